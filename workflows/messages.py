"""The agent workflow's signal and update handlers: how messages get into a run.

Every handler takes its payload raw and reads it with `workflows.inbound`: what does not fit is
refused (an update to its sender, a signal into `status` and the transcript), never a failed
workflow task. The descriptions are what `temporal workflow metadata` shows. `AgentWorkflow`
inherits these; they act on its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from durable_agents._approvals import ApprovalPolicy
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab.models import (
        AbortRequest,
        AgentRun,
        Approval,
        Decision,
        EventSignal,
        Message,
        MessageAck,
        OperatorRequest,
        UserMessage,
    )
    from durable_agents._vocab.names import (
        ABORT_SIGNAL,
        APPROVE_SIGNAL,
        DECIDE_UPDATE,
        EVENT_SIGNAL,
        MESSAGE_UPDATE,
        REJECT_SIGNAL,
        RESUME_SIGNAL,
        RETRY_TURN_SIGNAL,
    )
    from workflows import gates, inbound
    from workflows.inbound import NOTHING, MessageRefused
    from workflows.state import OperatorAction, RunState

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", AbortRequest, OperatorRequest)  # operators' signals: they say who sends them


class MessageHandlers:
    # The signals and updates that take one payload each (workers/inbound_guard.py).
    MESSAGES = frozenset(inbound.EXAMPLES)
    _run: AgentRun
    _spec: AgentSpec | None
    _state: RunState

    @workflow.signal(name=EVENT_SIGNAL, description=inbound.describe(EVENT_SIGNAL))
    def on_event(self, payload: RawValue = NOTHING) -> None:
        event = self._take("event", payload, EventSignal)
        if event is None:
            return
        self._state.put_event(event)
        self._state.note("event", f"event {event.name} received", event.model_dump(mode="json"))

    @workflow.update(name=DECIDE_UPDATE, description=inbound.describe(DECIDE_UPDATE))
    def decide(self, payload: RawValue = NOTHING) -> Approval:
        with inbound.to_sender():  # a replayed update its validator took (no validator ran)
            approval, decision = self._decision("decide", payload)
        return gates.apply(self._state, approval, decision)

    @decide.validator
    def _validate_decide(self, payload: RawValue = NOTHING) -> None:
        with inbound.to_sender():
            self._decision("decide", payload)  # refused here, nothing reaches history

    @workflow.signal(name=APPROVE_SIGNAL, description=inbound.describe(APPROVE_SIGNAL))
    def approve(self, payload: RawValue = NOTHING) -> None:
        self._signal_decision("approve", payload)

    @workflow.signal(name=REJECT_SIGNAL, description=inbound.describe(REJECT_SIGNAL))
    def reject(self, payload: RawValue = NOTHING) -> None:
        self._signal_decision("reject", payload)

    @workflow.update(name=MESSAGE_UPDATE, description=inbound.describe(MESSAGE_UPDATE))
    def message(self, payload: RawValue = NOTHING) -> MessageAck:
        with inbound.to_sender():
            msg = self._user_message(payload)
        question = self._state.waiting.question
        self._state.note("message", f"{msg.sender}: {msg.text}")
        if question is not None and question.answer is None:
            question.answer, question.answered_by = msg.text, msg.sender
            return MessageAck(status="answered", question=question.text)
        self._state.waiting.follow_ups.append(Message(role="user", content=msg.text))
        return MessageAck(status="queued")

    @message.validator
    def _validate_message(self, payload: RawValue = NOTHING) -> None:
        with inbound.to_sender():
            self._user_message(payload)

    @workflow.signal(name=RESUME_SIGNAL, description=inbound.describe(RESUME_SIGNAL))
    def resume(self, payload: RawValue = NOTHING) -> None:
        self._operator_signal("resume", payload)

    @workflow.signal(name=RETRY_TURN_SIGNAL, description=inbound.describe(RETRY_TURN_SIGNAL))
    def retry_turn(self, payload: RawValue = NOTHING) -> None:
        self._operator_signal("retry_turn", payload)

    @workflow.signal(name=ABORT_SIGNAL, description=inbound.describe(ABORT_SIGNAL))
    def abort(self, payload: RawValue = NOTHING) -> None:
        request = self._signed("abort", payload, AbortRequest)
        if request is None:
            return
        if self._state.parking.reason is not None:
            self._state.parking.abort_reason = f"{request.reason} (by {request.by})"
        self._operator("abort", request.by)

    @workflow.signal(dynamic=True, description="Any other signal: refused and recorded.")
    def unknown_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        self._refuse(name, MessageRefused(inbound.unknown(name, "signal")))

    @workflow.update(dynamic=True, description="Any other update: refused.")
    def unknown_update(self, name: str, payloads: Sequence[RawValue]) -> None:
        raise MessageRefused(inbound.unknown(name, "update")).as_update_error()

    @unknown_update.validator
    def _validate_unknown_update(self, name: str, payloads: Sequence[RawValue]) -> None:
        raise MessageRefused(inbound.unknown(name, "update")).as_update_error()

    def refuse(self, handler: str, reason: str) -> None:
        """Record a signal refused before its handler ran (workers/inbound_guard.py)."""
        self._refuse(handler, MessageRefused(reason))

    def _refuse(self, handler: str, exc: MessageRefused) -> None:
        # A string, not the exception: its traceback would pin the workflow's frames.
        self._state.refuse(handler, exc.sender, exc.reason)

    def _take(
        self, handler: str, payload: RawValue, model: type[M], sender_field: str = ""
    ) -> M | None:
        """The signal's payload as `model`, or None once the refusal is recorded."""
        try:
            return self._read(handler, payload, model, sender_field)
        except MessageRefused as exc:
            self._refuse(handler, exc)
            return None

    def _read(self, handler: str, payload: RawValue, model: type[M], sender_field: str = "") -> M:
        return inbound.read(payload, model, inbound.EXAMPLES[handler], sender_field)

    def _operator_signal(self, action: OperatorAction, payload: RawValue) -> None:
        """`resume` or `retry_turn`, with who asks."""
        request = self._signed(action, payload, OperatorRequest)
        if request is not None:
            self._operator(action, request.by)

    def _signed(self, handler: str, payload: RawValue, model: type[S]) -> S | None:
        """An operator's signal with its `by` in normal form, or None once refused."""
        request = self._take(handler, payload, model, "by")
        if request is None:
            return None
        try:
            request.by = inbound.someone(request.by, "by")
        except MessageRefused as exc:
            self._refuse(handler, exc)
            return None
        return request

    def _operator(self, action: OperatorAction, by: str) -> None:
        if self._state.parking.reason is None:
            why = f"the run does not need attention (it is {self._state.status})"
            self._refuse(action, MessageRefused(why, by or "unknown"))
            return
        if by:
            self._state.note("note", f"{action.replace('_', '-')} asked by {by}")
        self._state.parking.action = action

    def _decision(self, handler: str, payload: RawValue) -> tuple[Approval, Decision]:
        """The approval a decision is for and the decision (approver in normal form), or
        MessageRefused (DecisionRefused when the run will not take it from this person)."""
        decision = self._read(handler, payload, Decision, "approver")
        if handler != "decide" and decision.approve != (handler == "approve"):
            raise MessageRefused(
                f"the {handler} signal says approve={str(decision.approve).lower()}: send "
                f"the {'reject' if handler == 'approve' else 'approve'} signal instead, or fix "
                "the payload",
                decision.approver[:64],
            )
        decision.approver = inbound.someone(decision.approver, "approver")
        spec = self._spec
        self_ok = (spec.approvals or ApprovalPolicy()).self_approval if spec else False
        return gates.check(self._state, self._run.principal, self_ok, decision), decision

    def _signal_decision(self, handler: str, payload: RawValue) -> None:
        try:
            approval, decision = self._decision(handler, payload)
        except MessageRefused as exc:
            self._refuse(handler, exc)
            return
        gates.apply(self._state, approval, decision)

    def _user_message(self, payload: RawValue) -> UserMessage:
        msg = self._read("message", payload, UserMessage, "sender")
        msg.sender = inbound.someone(msg.sender, "sender")
        if msg.sender != self._run.principal:
            raise MessageRefused(
                f"only {self._run.principal!r}, for whom this run acts, may message it; "
                f"not {msg.sender!r}",
                msg.sender,
            )
        if not msg.text.strip():
            raise MessageRefused("the message is empty", msg.sender)
        return msg
