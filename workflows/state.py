"""A run's state: everything the loop knows, in one serialisable model.

It lives in the workflow and is rebuilt from history on replay; being one pydantic model, it
can be carried across continue-as-new as it is. Its methods may call `workflow.*` and must only
run inside a workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow

from workflows import search
from workflows.models import (
    AgentStatusValue,
    Approval,
    EventSignal,
    Message,
    Outcome,
    TranscriptEntry,
    Usage,
)


def spoken(span: timedelta) -> str:
    """`7 days`, `36 h`, `90 s`: a duration as an operator would say it."""
    seconds = span.total_seconds()
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


class ReceivedEvent(BaseModel):
    event: EventSignal
    at: datetime


OperatorAction = Literal["resume", "retry_turn", "abort"]


class PendingCompensation(BaseModel):
    """The undo of a completed reversible step, run if the saga unwinds."""

    step: str
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str


class Question(BaseModel):
    text: str
    asked_at: datetime
    answer: str | None = None
    answered_by: str | None = None


class RunState(BaseModel):
    status: AgentStatusValue = "running"
    turn: int = 0
    usage: Usage = Field(default_factory=Usage)
    messages: list[Message] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    # Outside events, in arrival order, kept until a wait takes them: an early one is not lost.
    inbox: list[ReceivedEvent] = Field(default_factory=list)
    waiting_for: str | None = None
    waiting_since: datetime | None = None
    last_error: str | None = None
    tool_errors: int = 0
    repairs: int = 0
    approvals: list[Approval] = Field(default_factory=list)
    question: Question | None = None
    follow_ups: list[Message] = Field(default_factory=list)  # `message`s not answering a question
    compensations: list[PendingCompensation] = Field(default_factory=list)
    unwinding: str | None = None  # why the saga must be undone
    unwind_outcome: Outcome | None = None
    parked_reason: str | None = None
    operator_action: OperatorAction | None = None
    abort_reason: str = ""
    route_index: int = 0  # which model of the route serves the run (after fallbacks)
    # Runs started before failure strategies existed fail where newer ones park or fall back.
    strategies: bool = False
    call_counts: dict[str, int] = Field(default_factory=dict)  # tool call + arguments -> times
    idle_turns: int = 0
    successes: int = 0  # tool calls that returned a result
    cost_usd: Decimal = Decimal(0)
    budget_extensions: int = 0
    compactions: int = 0
    active_children: int = 0
    reserved_tokens: int = 0  # budget handed to sub-agents still running

    def note(self, kind: Any, text: str, data: dict[str, Any] | None = None) -> None:
        self.transcript.append(
            TranscriptEntry(
                at=workflow.now(), turn=self.turn, kind=kind, text=text, data=data or {}
            )
        )

    def set_status(self, status: AgentStatusValue) -> None:
        if status != self.status:
            workflow.upsert_search_attributes([search.AGENT_STATUS.value_set(status)])
        self.status = status

    def start_waiting(
        self, what: str, timeout: timedelta, status: AgentStatusValue = "waiting_event"
    ) -> datetime:
        now = workflow.now()
        self.waiting_for, self.waiting_since = what, now
        self.set_status(status)
        limit = spoken(timeout)
        workflow.set_current_details(
            f"Waiting since {now:%Y-%m-%d %H:%M} UTC for {what} (gives up after {limit})."
        )
        self.note("wait", f"waiting for {what}, at most {limit}")
        return now

    def stop_waiting(self) -> None:
        self.waiting_for = self.waiting_since = None
        self.set_status("running")
        workflow.set_current_details(f"Working: turn {self.turn}.")

    def put_event(self, event: EventSignal) -> None:
        self.inbox.append(ReceivedEvent(event=event, at=workflow.now()))

    def has_event(self, names: list[str]) -> bool:
        return any(r.event.name in names for r in self.inbox)

    def take_event(self, names: list[str]) -> ReceivedEvent | None:
        for i, received in enumerate(self.inbox):
            if received.event.name in names:
                return self.inbox.pop(i)
        return None
