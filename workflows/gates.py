"""Approval gates: a tool call waits for an authorised person, for days if need be.

The request is a record in the run's state (visible in `status` and the transcript); timers
escalate it and let it expire as the policy says. Decisions come through the `decide` update or
the `approve`/`reject` signals, checked here before they touch anything.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._approvals import ApprovalRule, may_decide
    from durable_agents._vocab.names import RECORD_AUDIT
    from durable_agents._vocab.proofs import arguments_digest
    from durable_agents._vocab.schemas import (
        Approval,
        ApprovalState,
        Decision,
        EscalationRecord,
        ToolCall,
        entry_for,
    )
    from durable_agents._vocab.text import printable
    from durable_agents.workflows import catalog
    from durable_agents.workflows.inbound import DECISION_REFUSED, MessageRefused
    from durable_agents.workflows.state import RunState, spoken
    from durable_agents.workflows.waits import within


class DecisionRefused(MessageRefused):
    """A decision the run will not take; the message says why and what to do."""

    kind = DECISION_REFUSED


def describe_call(call: ToolCall, arguments: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{k}={printable(str(v))}" for k, v in sorted(arguments.items()) if len(str(v)) <= 80
    )
    return f"{call.name}({shown})"


def open_request(
    state: RunState, rule: ApprovalRule, call: ToolCall, args: dict[str, Any]
) -> Approval:
    now = workflow.now()
    principals, groups = rule.approvers(escalated=False)
    approval = Approval(
        id=f"apr-{len(state.approvals) + 1}",
        run=workflow.info().workflow_id,
        tool=call.name,
        tool_call_id=call.id,
        arguments=args,
        digest=arguments_digest(args),
        summary=describe_call(call, args),
        rule=rule.description,
        requested_at=now,
        expires_at=now + rule.expires_after,
        requested_for=principals,
        groups=groups,
        editable=rule.editable_in(args),
    )
    state.approvals.append(approval)
    workflow.metric_meter().create_counter(
        "durable_agents_approvals_requested", "approvals requested", "approvals"
    ).add(1, {"tool": call.name})
    return approval


def check(state: RunState, principal: str, self_approval: bool, d: Decision) -> Approval:
    """The approval a decision is for, or DecisionRefused; an exact repeat is accepted."""
    approval = find(state, d.approval_id) if d.approval_id else _only_or_repeat(state, d)
    if approval.state != "pending":
        repeat = (
            approval.decided_by == d.approver
            and approval.state == _verdict(d)
            and approval.edited_arguments == d.arguments
        )
        if repeat:
            return approval
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        raise DecisionRefused(f"approval {approval.id} is already {approval.state}{by}")
    directory = catalog.current().directory
    if d.approver is None or not may_decide(
        d.approver, approval.requested_for, approval.groups, directory
    ):
        allowed = ", ".join(approval.requested_for + [f"group {g}" for g in approval.groups])
        raise DecisionRefused(
            f"{d.approver!r} may not decide approval {approval.id}; allowed: {allowed}"
        )
    if d.approver == principal and not self_approval:
        raise DecisionRefused(
            f"{d.approver!r} started this run and may not approve its own request"
        )
    if d.digest and d.digest != approval.digest:
        raise DecisionRefused(
            f"approval {approval.id} is for arguments with digest {approval.digest}, "
            f"not {d.digest}: look again at `agentctl approvals`"
        )
    if d.arguments is not None:
        edited(approval, d.arguments)
    return approval


def edited(approval: Approval, arguments: dict[str, Any]) -> list[str]:
    """The arguments an edit changes, or DecisionRefused if the rule does not allow it."""
    if not approval.editable:
        raise DecisionRefused(
            f"approval {approval.id}'s rule allows no edits: approve or reject it as it is"
        )
    if set(arguments) != set(approval.arguments):
        missing = sorted(set(approval.arguments) - set(arguments))
        extra = sorted(set(arguments) - set(approval.arguments))
        raise DecisionRefused(
            f"send every argument of {approval.tool}, edited or not"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not arguments of it: {', '.join(extra)}" if extra else "")
        )
    changed = [k for k in sorted(arguments) if arguments[k] != approval.arguments[k]]
    if not changed:
        raise DecisionRefused(
            f"the edit of {approval.id} changes nothing: approve it as it is instead"
        )
    fixed = [k for k in changed if k not in approval.editable]
    if fixed:
        raise DecisionRefused(
            f"approval {approval.id} lets a person edit only {', '.join(approval.editable)}; "
            f"not {', '.join(fixed)}"
        )
    return changed


def _only_or_repeat(state: RunState, d: Decision) -> Approval:
    """With no id: the one pending approval, or the one this approver just decided alike."""
    pending = [a for a in state.approvals if a.state == "pending"]
    if len(pending) == 1:
        return pending[0]
    if not pending and state.approvals:
        # Nothing waits: an exact repeat finds its decision, anything else the latest one.
        same = [a for a in state.approvals if a.decided_by == d.approver and a.state == _verdict(d)]
        return same[-1] if same else state.approvals[-1]
    ids = ", ".join(a.id for a in pending) or "none"
    raise DecisionRefused(f"name the approval to decide; pending: {ids}")


def find(state: RunState, approval_id: str) -> Approval:
    pending = [a for a in state.approvals if a.state == "pending"]
    for approval in state.approvals:
        if approval.id == approval_id:
            return approval
    ids = ", ".join(a.id for a in pending) or "none"
    raise DecisionRefused(f"no approval {approval_id!r} on this run; pending: {ids}")


def apply(state: RunState, approval: Approval, d: Decision) -> Approval:
    if approval.state != "pending":
        return approval  # an exact repeat: the first decision stands
    approval.state = _verdict(d)
    approval.decided_by = d.approver
    approval.reason = d.reason
    approval.decided_at = workflow.now()
    because = f": {d.reason}" if d.reason else ""
    data: dict[str, Any] = {"approval": approval.id}
    edits = ""
    if d.arguments is not None:
        changed = edited(approval, d.arguments)
        approval.edited_arguments = d.arguments
        approval.edited_digest = arguments_digest(d.arguments)
        edits = (
            f" with edits to {', '.join(changed)} "
            f"(digest {approval.digest} -> {approval.edited_digest})"
        )
        data |= {"edited": changed, "edited_digest": approval.edited_digest}
    state.note("approval", f"{approval.id} {approval.state} by {d.approver}{edits}{because}", data)
    return approval


def told_of_edits(approval: Approval) -> str:
    """What the model reads before the result of a call a person edited before approving."""
    before, after = approval.arguments, approval.edited_arguments or {}
    changes = "; ".join(
        f"{k}: {_short(before.get(k))} -> {_short(after.get(k))}"
        for k in sorted(after)
        if after.get(k) != before.get(k)
    )
    return (
        f"[From the approval of {approval.tool} ({approval.tool_call_id}): "
        f"{approval.decided_by} edited the call before approving it ({changes}); it ran with "
        "the edited arguments.]"
    )


def _short(value: Any) -> str:
    return printable(json.dumps(value, ensure_ascii=False), 200)


def pending_for(state: RunState, call_id: str) -> Approval | None:
    """The undecided request for a tool call (one a run continued as new carried over)."""
    return next(
        (a for a in state.approvals if a.tool_call_id == call_id and a.state == "pending"), None
    )


def _verdict(d: Decision) -> ApprovalState:
    return "approved" if d.approve else "rejected"


async def await_decision(
    state: RunState, rule: ApprovalRule, approval: Approval, safe_point: bool = False
) -> None:
    """Wait until the approval is decided, escalating and expiring as the rule says.

    Timers count from the request, so a run that continued as new (`safe_point`: the wait may
    raise ContinueRun) escalates and expires on the same schedule.
    """
    decided = lambda: approval.state != "pending"  # noqa: E731
    who = ", ".join(approval.requested_for + approval.groups)
    state.start_waiting(
        f"approval {approval.id} of {approval.summary} by {who}",
        rule.expires_after,
        status="waiting_approval",
        until=approval.expires_at,
    )
    watch = state if safe_point else None
    esc = rule.escalation
    if esc and esc.after < rule.expires_after and not approval.escalations:
        until = approval.requested_at + esc.after - workflow.now()
        label = f"escalate {approval.id} after {spoken(esc.after)}"
        if not await within(decided, until, watch, label):
            escalate(state, rule, approval)
    remaining = approval.expires_at - workflow.now()
    label = f"{approval.id} expires after {spoken(rule.expires_after)}"
    if approval.state == "pending" and not await within(decided, remaining, watch, label):
        approval.state = "expired"
        state.note(
            "approval",
            f"{approval.id} expired after {spoken(rule.expires_after)}",
            {"approval": approval.id},
        )
    state.stop_waiting()
    meter = workflow.metric_meter()
    labels = {"tool": approval.tool, "outcome": approval.state}
    meter.create_counter("durable_agents_approvals_decided", "approvals decided", "approvals").add(
        1, labels
    )
    waited = int((workflow.now() - approval.requested_at).total_seconds())
    meter.create_histogram(
        "durable_agents_approval_age", "how long an approval waited for its decision", "s"
    ).record(waited, labels)
    await audit(state, approval)


async def audit(state: RunState, approval: Approval) -> None:
    """Append the decision (or the expiry) to the audit log, once per approval."""
    who = state.identity
    assert who is not None  # set when the run starts, before any tool call
    await workflow.execute_local_activity(
        RECORD_AUDIT,
        entry_for(
            who,
            f"{who.workflow_id}/{approval.id}",
            "approval",
            tool=approval.tool,
            approver=approval.decided_by,
            outcome=approval.state,
            details={
                "approval": approval.id,
                "tool_call_id": approval.tool_call_id,
                "arguments": approval.arguments,
                "digest": approval.digest,
                "rule": approval.rule,
                "reason": approval.reason,
                "requested_at": approval.requested_at.isoformat(),
                "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
                "escalated_to": [e.model_dump(mode="json") for e in approval.escalations],
            }
            # Approved with edits: what the tool ran with, and its digest (the editor is the
            # approver, as the proof names both digests).
            | (
                {
                    "edited_arguments": approval.edited_arguments,
                    "edited_digest": approval.edited_digest,
                    "edited_by": approval.decided_by,
                }
                if approval.edited_arguments is not None
                else {}
            )
            # Who decided, as the identity provider proved it (decisions since proofs).
            | (
                {
                    "proof_id": approval.proof_id,
                    "proof_issuer": approval.proof_issuer,
                    "proof": approval.proof,
                }
                if approval.proof_id
                else {}
            ),
        ),
        start_to_close_timeout=timedelta(seconds=10),
        summary=f"audit {approval.id}: {approval.state}",
    )


async def ask(
    state: RunState, what: str, why: str, groups: tuple[str, ...], expires: timedelta
) -> Approval:
    """Ask a person (an approval, not a tool call) whether the run may go on."""
    call = ToolCall(
        id=f"{what}-{state.turn}-{len(state.approvals) + 1}", name=what, arguments={"why": why}
    )
    rule = ApprovalRule(tool=what, description=why, groups=groups, expires_after=expires)
    approval = open_request(state, rule, call, call.arguments)
    state.note(
        "approval", f"{approval.id} requested: may the run go on? {why}", {"approval": approval.id}
    )
    await await_decision(state, rule, approval)
    return approval


def escalate(state: RunState, rule: ApprovalRule, approval: Approval) -> None:
    assert rule.escalation is not None
    esc = rule.escalation
    approval.escalations.append(
        EscalationRecord(
            at=workflow.now(), groups=list(esc.groups), principals=list(esc.principals)
        )
    )
    approval.requested_for += [p for p in esc.principals if p not in approval.requested_for]
    approval.groups += [g for g in esc.groups if g not in approval.groups]
    to = ", ".join(list(esc.principals) + [f"group {g}" for g in esc.groups])
    state.note(
        "approval",
        f"{approval.id} undecided after {spoken(esc.after)}: escalated to {to}",
        {"approval": approval.id},
    )
    workflow.logger.warning("approval %s escalated to %s", approval.id, to)
