"""Live progress on Temporal's Workflow Streams (`temporalio.contrib.workflow_streams`).

The run hosts one stream and publishes a `LiveEvent` (durable_agents/_vocab/live.py) for every
transcript entry and every change of status. Publishing appends to the run's in-memory log: no
command, no history (replays of runs recorded before the stream replay unchanged); subscribers
read it with the stream's long-poll updates (`agentctl watch`, `RunHandle.watch`), from any
offset, after the run ended too. The run keeps the newest KEEP events for late subscribers
(older ones are truncated) and carries the newest CARRY across continue-as-new, where offsets go
on counting. From outside it takes only the model's text as `call_llm` streams it (topic `text`);
any other publish signal is refused and recorded.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState

    from durable_agents._vocab.live import TEXT_LIMIT, TOPIC, LiveEvent

KEEP = 500  # events the run keeps for late subscribers
CARRY = 10  # events carried across continue-as-new (the new run's input stays small)
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"


class Live:
    """The run's stream and how far it has counted (offsets are global across the chain)."""

    def __init__(self, stream: WorkflowStream, prior: WorkflowStreamState | None) -> None:
        self.stream = stream
        self.base = prior.base_offset if prior else 0

    def publish(self, event: LiveEvent) -> None:
        self.stream.topic(TOPIC).publish(event.model_dump(mode="json"))
        if self._end() - self.base > KEEP + KEEP // 5:  # in steps: truncating is a copy
            self.keep(KEEP)

    def _end(self) -> int:
        # The stream's own count: `call_llm` publishes the model's text into it too.
        return int(self.stream._on_offset())

    def keep(self, newest: int) -> None:
        end = self._end()
        if end - self.base > newest:
            self.stream.truncate(end - newest)
            self.base = end - newest

    def carry(self) -> WorkflowStreamState:
        """The stream's state for the next run, its newest CARRY events (the run let its
        subscribers go first, before waiting for its handlers: they follow the chain)."""
        self.keep(CARRY)
        return self.stream.get_state()


def publish(kind: str, text: str, turn: int, status: str, data: dict[str, Any]) -> None:
    """Publish a step on the run's stream (a run without one, e.g. a test's, publishes none)."""
    live = getattr(workflow.instance(), "live", None)
    if not isinstance(live, Live):
        return
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + " … (in full in the transcript)"
    event = LiveEvent(at=workflow.now(), turn=turn, kind=kind, text=text, status=status, data=data)
    live.publish(event)
