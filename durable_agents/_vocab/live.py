"""What a run shows the people watching it, on its Workflow Stream (topic `progress`).

One `LiveEvent` per step as the run takes it: each transcript entry (the task, the model's words,
a tool call and its result, a wait, an approval asked and decided, an event, a parked run, a
note) and each change of status, the last of which is the run's end. Texts are bounded: the full
record is the transcript.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

TOPIC = "progress"  # the run's steps, published by the run
TEXT_TOPIC = "text"  # the model's text as it is written, published by `call_llm`
TEXT_LIMIT = 500  # characters of one event's text (the transcript has it whole)
TERMINAL = ("completed", "rejected", "aborted", "timed_out", "budget_exhausted", "failed")


class LiveEvent(BaseModel):
    """One step of a run, as its stream carries it."""

    at: datetime
    turn: int
    kind: str  # a transcript entry's kind, "status", or "text" (a piece of the model's words)
    text: str = Field(max_length=TEXT_LIMIT + 100)  # a step's (bounded), or a piece of text
    status: str  # the run's status once this step was taken
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.kind == "status" and self.status in TERMINAL
