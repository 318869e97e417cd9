// A run's steps as they come (server-sent events from /runs/RUN/live). Text only: nothing
// the model or a tool wrote is ever HTML here.
(function () {
  var list = document.getElementById("live");
  if (!list || !window.EventSource) return;
  var status = document.getElementById("status");
  var source = new EventSource(list.getAttribute("data-src"));
  var writing = null, attempt = 0, written = "";
  source.onmessage = function (message) {
    var event = JSON.parse(message.data);
    if (event.kind === "text") {
      var said = (event.data && event.data.attempt) || 1;
      if (writing && said !== attempt) { writing.className = "text void"; writing = null; written = ""; }
      if (!writing) {
        writing = document.createElement("li");
        writing.className = "text";
        writing.textContent = event.at.slice(11, 19) + " t" + event.turn + " ";
        list.appendChild(writing);
      }
      attempt = said;
      writing.textContent += event.text;
      written += event.text;
      return;
    }
    writing = null;
    if (event.kind === "assistant" && written && event.text.indexOf(written.slice(0, 200)) === 0) {
      written = "";
      return;
    }
    written = "";
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
