"""A run's state: everything the loop knows, and what the loop does with it.

The data is `durable_agents._vocab.carried.CarriedState` (typed, grouped by concern), carried
across continue-as-new as `AgentRun.carried`; it lives in the workflow and is rebuilt from
history on replay. The methods here may call `workflow.*` and must only run inside a workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from durable_agents._vocab.carried import (
    CarriedState,
    OperatorAction,
    PendingCompensation,
    Question,
    ReceivedEvent,
)
from durable_agents._vocab.models import (
    AgentStatusValue,
    EventSignal,
    RefusedMessage,
    TranscriptEntry,
)
from durable_agents._vocab.text import printable
from workflows import search

__all__ = ["OperatorAction", "PendingCompensation", "Question", "RunState", "spoken"]


def spoken(span: timedelta) -> str:
    """`7 days`, `36 h`, `90 s`: a duration as an operator would say it."""
    seconds = span.total_seconds()
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


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


class RunState(CarriedState):
    """The state (`CarriedState`, grouped by concern) and what the loop does with it."""

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
        self.waiting.waiting_for, self.waiting.waiting_since = what, now
        self.set_status(status)
        limit = spoken(timeout)
        workflow.set_current_details(
            f"Waiting since {now:%Y-%m-%d %H:%M} UTC for {printable(what, DETAILS)} "
            f"(gives up after {limit})."
        )
        self.note("wait", f"waiting for {what}, at most {limit}")
        return now

    def stop_waiting(self) -> None:
        self.waiting.waiting_for = self.waiting.waiting_since = None
        self.set_status("running")
        workflow.set_current_details(f"Working: turn {self.turn}.")

    def upgrade_due(self) -> bool:
        """Whether the run should move onto a new version of the workers: its deployment has
        a new current (or ramping) version for it, the agent upgrades at turn boundaries, no
        saga owes undo steps (they are undone by the code that made them) and no sub-agent
        runs, and the state fits in a payload. Always False without versioning."""
        if not self.chain.upgrade or self.saga.unwinding or self.saga.compensations:
            return False
        if self.spending.active_children:
            return False
        info = workflow.info()
        if info.get_current_deployment_version() is None:
            return False  # an unversioned worker: there is nothing to move onto
        if info.get_current_history_length() <= self.chain.events_at_start:
            return False  # a run of the chain moves on only after it has done something
        size = info.get_current_history_size()
        if size < self.chain.blocked_below:
            return False
        return info.is_target_worker_deployment_version_changed() and self._fits(size)

    def continue_due(self) -> bool:
        """Whether this is a safe moment's reason to continue as new: an upgrade is due, or
        history past the threshold (or Temporal suggesting it), some progress since this run
        began, and no sub-agent running (children cannot follow their parent into a new run)."""
        if self.upgrade_due():
            return True
        if self.chain.after is None or self.spending.active_children:
            return False
        info = workflow.info()
        size = info.get_current_history_size()
        if size < self.chain.blocked_below:
            return False
        if info.get_current_history_length() < self.chain.events_at_start + MIN_EVENTS_PER_RUN:
            return False
        if not info.is_continue_as_new_suggested() and size <= max(
            self.chain.after, 2 * self.chain.history_at_start
        ):
            return False
        return self._fits(size)

    def _fits(self, size: int) -> bool:
        """Whether the state can be handed to a new run. If it is too large (a huge
        conversation), the run goes on here and tries again only after as much history again."""
        carried = workflow.payload_converter().to_payloads([self.carry()])[0].ByteSize()
        if carried <= self.store.max_payload:
            return True
        self.chain.blocked_below = size + (self.chain.after or size)
        workflow.logger.warning(
            "cannot continue as new: the state is %s bytes, over the payload limit %s",
            carried,
            self.store.max_payload,
        )
        return False

    def carry(self) -> CarriedState:
        """The state for the next run of the chain. The conversation goes whole; long
        transcript texts are shortened (they are in full in this run's history)."""
        carried = self.model_dump(mode="json")
        for entry in carried["transcript"]:
            if len(entry["text"]) > CARRIED_TEXT:
                entry["text"] = entry["text"][:CARRIED_TEXT] + " … (shortened when the run "
                entry["text"] += "continued as new; in full in an earlier run's history)"
            entry["data"].pop("replaced", None)
        return CarriedState.model_validate(carried)

    def put_event(self, event: EventSignal) -> None:
        self.waiting.inbox.append(ReceivedEvent(event=event, at=workflow.now()))

    def has_event(self, names: list[str]) -> bool:
        return any(r.event.name in names for r in self.waiting.inbox)

    def take_event(self, names: list[str]) -> ReceivedEvent | None:
        for i, received in enumerate(self.waiting.inbox):
            if received.event.name in names:
                return self.waiting.inbox.pop(i)
        return None
