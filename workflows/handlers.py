"""The agent workflow's signal and update handlers: how messages get into a run.

Every handler takes its payload raw and reads it with `workflows.inbound`: what does not fit is
refused (an update to its sender, a signal into `status` and the transcript), never a failed
workflow task. A person's message (a decision, a message, an operator's action) is taken only
with a proof of who sends it, bound to what it says (`workflows.proofs`); the name it claims,
if any, must be the proof's. The descriptions are what `temporal workflow metadata` shows.
`AgentWorkflow` inherits these; they act on its state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from durable_agents._approvals import ApprovalPolicy
    from durable_agents._directory import normalize
    from durable_agents._spec import AgentSpec, problems
    from durable_agents._vocab import proofs as details_of
    from durable_agents._vocab.names import (
        ABORT_SIGNAL,
        APPROVE_SIGNAL,
        DECIDE_UPDATE,
        EVENT_SIGNAL,
        MESSAGE_UPDATE,
        MOVE_SIGNAL,
        REJECT_SIGNAL,
        RESUME_SIGNAL,
        RETRY_TURN_SIGNAL,
    )
    from durable_agents._vocab.proofs import arguments_digest
    from durable_agents._vocab.schemas import (
        AbortRequest,
        AgentRun,
        Approval,
        Decision,
        EventSignal,
        Message,
        MessageAck,
        MoveRequest,
        OperatorRequest,
        Proven,
        UserMessage,
    )
    from durable_agents.workflows import catalog, gates, inbound, mcp_tools, proofs
    from durable_agents.workflows.inbound import NOTHING, MessageRefused
    from durable_agents.workflows.state import OperatorAction, RunState

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", AbortRequest, OperatorRequest)  # operators' signals: they say who sends them
# Who may resume, retry or abort a parked run, besides the person it acts for.
OPERATORS = "operators"


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

    @workflow.signal(name=MOVE_SIGNAL, description=inbound.describe(MOVE_SIGNAL))
    def on_move(self, payload: RawValue = NOTHING) -> None:
        # The workflow task this signal brings is the point: a run waiting at a safe point
        # sees its deployment's new version (RunState.upgrade_due) and continues as new there.
        self._take("move", payload, MoveRequest)

    @workflow.update(name=DECIDE_UPDATE, description=inbound.describe(DECIDE_UPDATE))
    async def decide(self, payload: RawValue = NOTHING) -> Approval:
        with inbound.to_sender():  # a replayed update its validator took (no validator ran)
            if not proofs.proven_messages(self._state):
                approval, decision = self._decision("decide", payload)
                return gates.apply(self._state, approval, decision)
            return await self._proven_decision("decide", payload)

    @decide.validator
    def _validate_decide(self, payload: RawValue = NOTHING) -> None:
        with inbound.to_sender():
            decision = self._read_decision("decide", payload)
            self._check_decision(decision, None)  # refused here, nothing reaches history

    @workflow.signal(name=APPROVE_SIGNAL, description=inbound.describe(APPROVE_SIGNAL))
    async def approve(self, payload: RawValue = NOTHING) -> None:
        await self._signal_decision("approve", payload)

    @workflow.signal(name=REJECT_SIGNAL, description=inbound.describe(REJECT_SIGNAL))
    async def reject(self, payload: RawValue = NOTHING) -> None:
        await self._signal_decision("reject", payload)

    @workflow.update(name=MESSAGE_UPDATE, description=inbound.describe(MESSAGE_UPDATE))
    async def message(self, payload: RawValue = NOTHING) -> MessageAck:
        with inbound.to_sender():
            if not proofs.proven_messages(self._state):
                msg = self._user_message(payload)
            else:
                msg = self._user_message(payload, proven=True)
                proven = await proofs.verified(msg.proof, self._message_details(msg), self._state)
                msg = self._user_message(payload, proven)
                proofs.take(self._state, proven)
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
            self._user_message(payload, proven=True)

    @workflow.signal(name=RESUME_SIGNAL, description=inbound.describe(RESUME_SIGNAL))
    async def resume(self, payload: RawValue = NOTHING) -> None:
        await self._operator_signal("resume", payload)

    @workflow.signal(name=RETRY_TURN_SIGNAL, description=inbound.describe(RETRY_TURN_SIGNAL))
    async def retry_turn(self, payload: RawValue = NOTHING) -> None:
        await self._operator_signal("retry_turn", payload)

    @workflow.signal(name=ABORT_SIGNAL, description=inbound.describe(ABORT_SIGNAL))
    async def abort(self, payload: RawValue = NOTHING) -> None:
        signed = await self._signed("abort", payload, AbortRequest)
        if signed is None:
            return
        request, proven = signed
        assert request.by is not None
        if self._state.parking.reason is not None:
            self._state.parking.abort_reason = f"{request.reason} (by {request.by})"
        await self._operator("abort", request.by, proven, request.reason)

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

    async def _operator_signal(self, action: OperatorAction, payload: RawValue) -> None:
        """`resume` or `retry_turn`, with who asks."""
        signed = await self._signed(action, payload, OperatorRequest)
        if signed is not None and signed[0].by is not None:
            await self._operator(action, signed[0].by, signed[1], signed[0].reason)

    async def _signed(
        self, handler: str, payload: RawValue, model: type[S]
    ) -> tuple[S, dict[str, str] | None] | None:
        """An operator's signal with its `by` the proven sender, in normal form (before
        proofs: as claimed), and who its proof proved; None once refused."""
        request = self._take(handler, payload, model, "by")
        if request is None:
            return None
        try:
            if not proofs.proven_messages(self._state):
                request.by = inbound.someone(request.by or "", "by")
                return request, None
            want = details_of.operator(workflow.info().workflow_id, handler, request.reason)
            proven = await proofs.verified(request.proof, want, self._state)
            request.by = self._prover(proven.subject, request.by, "by")
            if not self._may_operate(request.by):
                raise proofs.ProofRefused(
                    f"{request.by!r} may not {handler.replace('_', '-')} this run: only the "
                    f"{OPERATORS} group and {self._run.principal!r}, for whom it acts",
                    request.by,
                )
            proofs.take(self._state, proven)
        except MessageRefused as exc:
            self._refuse(handler, exc)
            return None
        return request, proofs.by(proven) | {"proof": request.proof or ""}

    def _may_operate(self, person: str) -> bool:
        directory = catalog.current().directory
        return person == self._run.principal or person in directory.members(OPERATORS)

    def _prover(self, subject: str, claimed: str | None, field: str) -> str:
        """The proof's subject as a person of the directory; a claimed name must be theirs."""
        person = inbound.someone(subject, "the proof's subject")
        if person != subject:  # `HANA` at the provider is not hana of the directory
            raise proofs.ProofRefused(
                f"the proof's subject {subject[:64]!r} is not a name of the directory", person
            )
        if claimed is not None and normalize(claimed) != person:
            raise proofs.ProofRefused(
                f"{field} {claimed[:64]!r} is not who signed the proof ({person!r}): leave "
                f"{field} out, or sign in as {claimed[:64]!r}",
                person,
            )
        return person

    async def _operator(
        self, action: OperatorAction, by: str, proven: dict[str, str] | None, reason: str
    ) -> None:
        if self._state.parking.reason is None:
            why = f"the run does not need attention (it is {self._state.status})"
            self._refuse(action, MessageRefused(why, by or "unknown"))
            return
        if by:
            self._state.note("note", f"{action.replace('_', '-')} asked by {by}")
        self._state.parking.action = action
        if proven is not None:  # taken: on the record, as the identity provider proved it
            await proofs.audit(self._state, action, proven, {"reason": reason})

    def _decision(self, handler: str, payload: RawValue) -> tuple[Approval, Decision]:
        """Before proofs (a replayed run): the approval and the decision as claimed, or
        MessageRefused (DecisionRefused when the run will not take it from this person)."""
        decision = self._read_decision(handler, payload)
        decision.approver = inbound.someone(decision.approver or "", "approver")
        return self._gate(decision), decision

    def _read_decision(self, handler: str, payload: RawValue) -> Decision:
        decision = self._read(handler, payload, Decision, "approver")
        if handler != "decide" and decision.approve != (handler == "approve"):
            raise MessageRefused(
                f"the {handler} signal says approve={str(decision.approve).lower()}: send "
                f"the {'reject' if handler == 'approve' else 'approve'} signal instead, or fix "
                "the payload",
                (decision.approver or "unknown")[:64],
            )
        return decision

    def _gate(self, decision: Decision) -> Approval:
        spec = self._spec
        policy = (spec.approvals if spec else None) or ApprovalPolicy()
        approval = gates.check(self._state, self._run.principal, policy.self_approval, decision)
        if decision.arguments is not None and approval.state == "pending":
            self._check_edit(policy, approval, decision.arguments)
        return approval

    def _check_edit(
        self, policy: ApprovalPolicy, approval: Approval, arguments: dict[str, Any]
    ) -> None:
        """Edited arguments the tool takes as they are, under the same rule (an edit that
        would need other approvers, or none, is a new request, not this one's)."""
        contract = (self._spec.tool(approval.tool) if self._spec else None) or (
            mcp_tools.contract(self._state, approval.tool)
        )
        if contract is None:
            raise gates.DecisionRefused(f"{approval.tool} is no tool of this run's agent")
        try:
            read = contract.input_model.model_validate(arguments).model_dump(mode="json")
        except ValidationError as exc:
            raise gates.DecisionRefused(
                f"the edited arguments do not fit {approval.tool}: {problems(exc)}"
            ) from None
        if read != arguments:
            shown = json.dumps(read, sort_keys=True)[:400]
            raise gates.DecisionRefused(
                f"send the edited arguments as {approval.tool} reads them: {shown}"
            )
        rule = policy.rule_for(contract, read)
        if rule is None or rule.description != approval.rule:
            now = f"the rule {rule.description!r}" if rule else "no approval"
            raise gates.DecisionRefused(
                f"edited so, the call would need {now}, not {approval.rule!r}: reject this "
                "request with your reason instead"
            )

    def _decision_details(self, decision: Decision, token_approval: Any) -> tuple[Approval, dict]:
        """The approval a decision is for, and what its proof must say."""
        if not decision.proof:
            raise proofs.ProofRefused(proofs.NO_PROOF)
        approval_id = decision.approval_id or token_approval
        if not isinstance(approval_id, str):
            raise proofs.ProofRefused(f"the proof names no approval; {proofs.HOW}")
        approval = gates.find(self._state, approval_id)
        edited = None if decision.arguments is None else arguments_digest(decision.arguments)
        want = details_of.decision(
            workflow.info().workflow_id,
            approval.id,
            decision.approve,
            approval.digest,
            decision.reason,
            edited,
        )
        return approval, want

    def _check_decision(self, decision: Decision, proven: Proven | None) -> Approval:
        """The approval a proven decision is for (the approver set to the proof's subject),
        or MessageRefused. Without `proven`: the proof's claims unverified (a validator)."""
        claimed = proofs.claimed_details(decision.proof)
        _, want = self._decision_details(decision, claimed.get("approval_id"))
        if proven is None:
            subject = proofs.preview(decision.proof, want, self._state)
        else:
            proofs.bound(proven.details, want)
            subject = proven.subject
        decision.approver = self._prover(subject, decision.approver, "approver")
        decision.approval_id = want["approval_id"]
        return self._gate(decision)

    async def _proven_decision(self, handler: str, payload: RawValue) -> Approval:
        decision = self._read_decision(handler, payload)
        claimed = proofs.claimed_details(decision.proof)
        _, want = self._decision_details(decision, claimed.get("approval_id"))
        proven = await proofs.verified(decision.proof, want, self._state)
        # Checked after the proof: the approval may have been decided meanwhile.
        approval = self._check_decision(decision, proven)
        proofs.take(self._state, proven)
        if approval.state == "pending":
            approval.proof_id, approval.proof_issuer = proven.proof_id, proven.issuer
            approval.proof = decision.proof or ""
        return gates.apply(self._state, approval, decision)

    async def _signal_decision(self, handler: str, payload: RawValue) -> None:
        try:
            if not proofs.proven_messages(self._state):
                approval, decision = self._decision(handler, payload)
                gates.apply(self._state, approval, decision)
                return
            await self._proven_decision(handler, payload)
        except MessageRefused as exc:
            self._refuse(handler, exc)

    def _message_details(self, msg: UserMessage) -> dict:
        return details_of.message(workflow.info().workflow_id, msg.text)

    def _user_message(self, payload: RawValue, proven: Proven | bool | None = None) -> UserMessage:
        """The principal's message: before proofs (`proven` None) as claimed; with a proof,
        checked as far as it can be without its keys (`proven` True, a validator) or on what
        `verify_proof` found (a `Proven`)."""
        msg = self._read("message", payload, UserMessage, "sender")
        if proven is None:
            msg.sender = inbound.someone(msg.sender or "", "sender")
        elif isinstance(proven, Proven):
            proofs.bound(proven.details, self._message_details(msg))
            msg.sender = self._prover(proven.subject, msg.sender, "sender")
        else:
            subject = proofs.preview(msg.proof, self._message_details(msg), self._state)
            msg.sender = self._prover(subject, msg.sender, "sender")
        if msg.sender != self._run.principal:
            raise MessageRefused(
                f"only {self._run.principal!r}, for whom this run acts, may message it; "
                f"not {msg.sender!r}",
                msg.sender,
            )
        if not msg.text.strip():
            raise MessageRefused("the message is empty", msg.sender)
        return msg
