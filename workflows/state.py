"""A run's state: everything the loop knows, and what the loop does with it.

The data is `durable_agents._vocab.carried.CarriedState` (typed, grouped by concern), carried
across continue-as-new as `AgentRun.carried`; it lives in the workflow and is rebuilt from
history on replay. The methods here may call `workflow.*` and must only run inside a workflow.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from durable_agents._vocab import chain
from durable_agents._vocab.carried import (
    CarriedState,
    OperatorAction,
    PendingCompensation,
    Question,
    ReceivedEvent,
)
from durable_agents._vocab.schemas import (
    AgentStatusValue,
    EventSignal,
    Message,
    RefusedMessage,
    TranscriptEntry,
)
from durable_agents._vocab.text import printable
from durable_agents.workflows import live, search

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
# Carried by reference (workflow.patched(CARRY_BY_REFERENCE)): the conversation goes as its
# chain head, the transcript as its latest entries, the runaway counts as the calls made more
# than once and the latest others; what is left out is in earlier runs' histories.
CARRY_BY_REFERENCE = "carry-by-reference-v1"
CARRIED_ENTRIES = 50
CARRIED_CALLS = 200
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
        live.publish(kind, text, self.turn, self.status, data or {})
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
            live.publish("status", status, self.turn, status, {})
        self.status = status

    def start_waiting(
        self,
        what: str,
        timeout: timedelta,
        status: AgentStatusValue = "waiting_event",
        until: datetime | None = None,
    ) -> datetime:
        """`until`: when the wait gives up, if it began before now (a run that continued as
        new waits on); else `timeout` from now."""
        now = workflow.now()
        self.waiting.waiting_for, self.waiting.waiting_since = what, now
        self.waiting.waiting_until = until or now + timeout
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
        self.waiting.waiting_until = None
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
        conversation carried as content, by runs that predate carrying by reference), the run
        goes on here and tries again only after as much history again."""
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
        """The state for the next run of the chain; long transcript texts are shortened (they
        are in full in this run's history). With the conversation by reference (and the patch),
        only the turn in progress goes as content, the rest by its chain head: the carried
        input stays small however long the conversation. Before the patch, the conversation
        went whole."""
        by_reference = self.store.by_reference and workflow.patched(CARRY_BY_REFERENCE)
        carried = self.model_dump(mode="json")
        if by_reference:
            self._trim(carried)
        for entry in carried["transcript"]:
            if len(entry["text"]) > CARRIED_TEXT:
                entry["text"] = entry["text"][:CARRIED_TEXT] + " … (shortened when the run "
                entry["text"] += "continued as new; in full in an earlier run's history)"
            entry["data"].pop("replaced", None)
        return CarriedState.model_validate(carried)

    def _trim(self, carried: dict[str, Any]) -> None:
        """`carried` (this state as JSON) by reference: the messages the store holds with their
        links, up to the last model reply (kept, so a run continued in the middle of a turn
        finishes it), go as the chain head; the transcript and runaway counts are bounded."""
        messages = self.messages
        last = next(
            (i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "assistant"),
            len(messages),
        )
        k = min(self.store.prefix, last, len(messages))
        store = carried["store"]
        if k:
            if self.store.base is None:
                store["first"] = messages[0].model_dump(mode="json")
            store["base"] = self.chain_heads()[k - 1]
            store["base_length"] = self.store.base_length + k
            store["base_chars"] = self.store.base_chars + chars(messages[:k])
            store["prefix"] = self.store.prefix - k
            carried["messages"] = carried["messages"][k:]
        carried["transcript"] = _bounded(carried["transcript"])
        counts = carried["progress"]["call_counts"]
        if len(counts) > CARRIED_CALLS:
            recent = set(list(counts)[-CARRIED_CALLS:])
            carried["progress"]["call_counts"] = {
                key: n for key, n in counts.items() if n > 1 or key in recent
            }

    def message_hashes(self) -> list[str]:
        """Hashes of the run's messages (after the carried base), computed once each."""
        known = self.store.hashes
        if len(known) > len(self.messages):
            known.clear()
        known.extend(chain.message_hash(m) for m in self.messages[len(known) :])
        return known

    def chain_heads(self) -> list[str]:
        """The chain head after each of the run's messages (from the carried base)."""
        self.store.heads = chain.heads(self.message_hashes(), self.store.heads, self.store.base)
        return self.store.heads

    def put_event(self, event: EventSignal) -> None:
        self.waiting.inbox.append(ReceivedEvent(event=event, at=workflow.now()))

    def has_event(self, names: list[str]) -> bool:
        return any(r.event.name in names for r in self.waiting.inbox)

    def take_event(self, names: list[str]) -> ReceivedEvent | None:
        for i, received in enumerate(self.waiting.inbox):
            if received.event.name in names:
                return self.waiting.inbox.pop(i)
        return None


def chars(messages: list[Message]) -> int:
    """Characters the model reads of `messages` (compaction's estimate counts them)."""
    return sum(
        len(m.content) + sum(len(json.dumps(c.arguments)) for c in m.tool_calls) for m in messages
    )


def _bounded(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A carried transcript (as JSON) of at most CARRIED_ENTRIES: the task stays first, then one
    note counting what was left out (in earlier runs' histories), then the latest entries."""
    if len(entries) <= CARRIED_ENTRIES:
        return entries
    head = entries[:1] if entries[0]["kind"] == "task" else []
    tail = entries[len(entries) - (CARRIED_ENTRIES - len(head) - 1) :]
    dropped = entries[len(head) : len(entries) - len(tail)]
    # A note left by an earlier continuation counts what it stood for.
    count = sum(int(e["data"].get("elided", 1)) for e in dropped)
    last = dropped[-1]
    note = {
        "at": last["at"],
        "turn": last["turn"],
        "kind": "note",
        "text": f"… {count} earlier entries: in earlier runs' histories of this chain",
        "data": {"elided": count},
    }
    return [*head, note, *tail]
