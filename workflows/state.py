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
    Identity,
    Message,
    Outcome,
    RefusedMessage,
    TranscriptEntry,
    Usage,
)
from workflows.text import printable


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
# A run of the chain makes at least this much progress (history events) before it continues as
# new again, even when what it carries over is itself large.
MIN_EVENTS_PER_RUN = 30
# Transcript texts longer than this are shortened when a run continues as new.
CARRIED_TEXT = 400
# Characters of outside text (a question, an error) in the UI's current details.
DETAILS = 1000
# Refused signals: how many `status` shows, and how many the transcript notes one by one.
REFUSED_KEPT = 10
REFUSED_NOTED = 50


class PendingCompensation(BaseModel):
    """The undo of a completed reversible step, run if the saga unwinds."""

    step: str
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str


class Question(BaseModel):
    text: str
    asked_at: datetime
    call_id: str = ""
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
    call_counts: dict[str, int] = Field(default_factory=dict)  # tool call + arguments -> times
    idle_turns: int = 0
    successes: int = 0  # tool calls that returned a result
    cost_usd: Decimal = Decimal(0)
    budget_extensions: int = 0
    compactions: int = 0
    active_children: int = 0
    reserved_tokens: int = 0  # budget handed to sub-agents still running
    # History by reference (workflows/history.py). `hashes`/`heads` are caches, rebuilt after a
    # continue-as-new; `stored_prefix` messages are in the store with their chain links,
    # `stored` are hashes of other things believed stored (the preamble, tool results).
    by_reference: bool = False
    max_payload: int = 1_800_000
    preamble: str = ""
    stored_prefix: int = 0
    stored: list[str] = Field(default_factory=list)
    hashes: list[str] = Field(default_factory=list, exclude=True)
    heads: list[str] = Field(default_factory=list, exclude=True)
    # Continue-as-new (workflows/agent.py, `continue_due`): past `continue_after` bytes of
    # history, or when Temporal suggests it, at the next safe point.
    continue_after: int | None = None
    history_at_start: int = Field(default=0, exclude=True)  # bytes and events when this
    events_at_start: int = Field(default=0, exclude=True)  # run (of the chain) began
    continue_blocked_below: int = 0  # history size under which not to try again
    continued: int = 0  # how many times the run has continued as new
    # The turn in progress, so a run continued in its middle can finish it.
    turn_fresh: int = 0  # tool calls of this turn never made before
    turn_successes: int = 0  # successes before this turn's tool calls
    waits: dict[str, datetime] = Field(default_factory=dict)  # durable tool call id -> began
    # The scopes granted at the start (None until the run has started), checked before every
    # tool call.
    scopes: list[str] | None = None
    # Who acts (set at the start of runs that audit their approval decisions).
    identity: Identity | None = None
    # Signals the run would not take: the latest few, and how many in all.
    refused: list[RefusedMessage] = Field(default_factory=list)
    refused_count: int = 0

    def note(self, kind: Any, text: str, data: dict[str, Any] | None = None) -> None:
        self.transcript.append(
            TranscriptEntry(
                at=workflow.now(), turn=self.turn, kind=kind, text=text, data=data or {}
            )
        )
        # The transcript, as structured logs too (workflow.logger stays quiet on replay).
        workflow.logger.info(
            "%s: %s", kind, text if len(text) <= 500 else text[:500] + " …", extra=self.context()
        )

    def refuse(self, handler: str, sender: str, reason: str) -> None:
        """Record a refused signal: in `status` (the latest few), the transcript (the first
        ones; a flood is counted, not written out), the logs and a metric."""
        self.refused_count += 1
        self.refused = [
            *self.refused[-(REFUSED_KEPT - 1) :],
            RefusedMessage(at=workflow.now(), handler=handler, sender=sender, reason=reason),
        ]
        workflow.metric_meter().create_counter(
            "durable_agents_messages_refused", "signals and updates a run refused", "messages"
        ).add(1, {"handler": handler[:64]})
        workflow.logger.warning(
            "refused %s from %s: %s", handler[:64], sender, reason, extra=self.context()
        )
        if self.refused_count <= REFUSED_NOTED:
            self.note("refused", f"refused {handler[:64]} from {sender}: {reason}")
        elif self.refused_count == REFUSED_NOTED + 1:
            self.note("refused", "more messages refused: counted in status, not written here")

    def context(self) -> dict[str, Any]:
        """Who and where, for a log record."""
        who = self.identity
        out: dict[str, Any] = {"turn": self.turn}
        if who is not None:
            out |= {"agent": who.agent, "principal": who.principal}
        return out

    def set_status(self, status: AgentStatusValue) -> None:
        if status != self.status:
            workflow.upsert_search_attributes([search.AGENT_STATUS.value_set(status)])
            agent = self.identity.agent if self.identity else "-"
            workflow.metric_meter().create_counter(
                "durable_agents_run_transitions", "runs entering a status", "runs"
            ).add(1, {"agent": agent, "status": status})
        self.status = status

    def start_waiting(
        self, what: str, timeout: timedelta, status: AgentStatusValue = "waiting_event"
    ) -> datetime:
        now = workflow.now()
        self.waiting_for, self.waiting_since = what, now
        self.set_status(status)
        limit = spoken(timeout)
        workflow.set_current_details(
            f"Waiting since {now:%Y-%m-%d %H:%M} UTC for {printable(what, DETAILS)} "
            f"(gives up after {limit})."
        )
        self.note("wait", f"waiting for {what}, at most {limit}")
        return now

    def stop_waiting(self) -> None:
        self.waiting_for = self.waiting_since = None
        self.set_status("running")
        workflow.set_current_details(f"Working: turn {self.turn}.")

    def continue_due(self) -> bool:
        """Whether this is a safe moment's reason to continue as new: history past the
        threshold (or Temporal suggesting it), some progress since this run began, and no
        sub-agent running (children cannot follow their parent into a new run)."""
        if self.continue_after is None or self.active_children:
            return False
        info = workflow.info()
        size = info.get_current_history_size()
        if size < self.continue_blocked_below:
            return False
        if info.get_current_history_length() < self.events_at_start + MIN_EVENTS_PER_RUN:
            return False
        if not info.is_continue_as_new_suggested() and size <= max(
            self.continue_after, 2 * self.history_at_start
        ):
            return False
        carried = workflow.payload_converter().to_payloads([self.carry()])[0].ByteSize()
        if carried > self.max_payload:
            # The state itself is too large to hand over (a huge conversation): go on here,
            # and try again only after as much history again.
            self.continue_blocked_below = size + self.continue_after
            workflow.logger.warning(
                "cannot continue as new: the state is %s bytes, over the payload limit %s",
                carried,
                self.max_payload,
            )
            return False
        return True

    def carry(self) -> dict[str, Any]:
        """The state for the next run of the chain. The conversation goes whole; long
        transcript texts are shortened (they are in full in this run's history)."""
        carried = self.model_dump(mode="json")
        for entry in carried["transcript"]:
            if len(entry["text"]) > CARRIED_TEXT:
                entry["text"] = entry["text"][:CARRIED_TEXT] + " … (shortened when the run "
                entry["text"] += "continued as new; in full in an earlier run's history)"
            entry["data"].pop("replaced", None)
        return carried

    def put_event(self, event: EventSignal) -> None:
        self.inbox.append(ReceivedEvent(event=event, at=workflow.now()))

    def has_event(self, names: list[str]) -> bool:
        return any(r.event.name in names for r in self.inbox)

    def take_event(self, names: list[str]) -> ReceivedEvent | None:
        for i, received in enumerate(self.inbox):
            if received.event.name in names:
                return self.inbox.pop(i)
        return None
