// A run's steps as they come (server-sent events from /runs/RUN/live). Text only: nothing
// the model or a tool wrote is ever HTML here.
(function () {
  var list = document.getElementById("live");
  if (!list || !window.EventSource) return;
  var status = document.getElementById("status");
  var source = new EventSource(list.getAttribute("data-src"));
  source.onmessage = function (message) {
    var event = JSON.parse(message.data);
    var item = document.createElement("li");
    item.className = event.kind;
    var when = event.at.slice(11, 19);
    item.textContent = when + " t" + event.turn + " " +
      (event.kind === "status" ? "status: " + event.status : event.text);
    list.appendChild(item);
    if (status) status.textContent = event.status;
    if (event.kind === "status" && ["completed", "rejected", "aborted", "timed_out",
        "budget_exhausted", "failed"].indexOf(event.status) >= 0) source.close();
  };
})();
