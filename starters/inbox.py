"""The operator's inbox: `agentctl approvals | approve | reject | message | resume`.

Pending approvals are found with a visibility query on the `AgentStatus` search attribute and
read from each run's `status` query; decisions go through the `decide` update, so a refused
decision (wrong approver, unknown or already decided approval) is an error here and never
reaches the run's history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from agents.approvals import may_decide
from starters import ops, render
from starters.cli import app, call, emit
from workers.client import connect
from workflows.agent import AgentWorkflow
from workflows.models import Approval, Decision, MessageAck, UserMessage

Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]
Address = Annotated[str | None, typer.Option(help="Temporal address.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
User = Annotated[str, typer.Option("--as", help="Who decides (checked against the policy).")]


def age(since: datetime) -> str:
    minutes = int((datetime.now(UTC) - since).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // 1440} days"


async def pending(client: Client, approver: str | None) -> list[dict[str, Any]]:
    query = "WorkflowType = 'AgentWorkflow' AND AgentStatus = 'waiting_approval'"
    rows = []
    async for wf in client.list_workflows(query, limit=500):
        status = await client.get_workflow_handle(wf.id).query(AgentWorkflow.status)
        for a in status.approvals:
            if a.state != "pending":
                continue
            if approver and not may_decide(approver, a.requested_for, a.groups):
                continue
            rows.append(
                {
                    "run": wf.id,
                    "agent": status.agent,
                    "approval": a.id,
                    "tool": a.tool,
                    "arguments": a.summary,
                    "age": age(a.requested_at),
                    "may decide": ", ".join(a.requested_for + [f"@{g}" for g in a.groups]),
                    "digest": a.digest,
                }
            )
    return rows


async def decide(client: Client, run_id: str, decision: Decision) -> Approval:
    await ops.require_open(client, run_id)
    try:
        return await client.get_workflow_handle(run_id).execute_update(
            AgentWorkflow.decide, decision
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        text = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ops.OpError(f"decision refused: {text}") from None
    except RPCError as exc:
        raise ops.OpError(f"decision not delivered to {run_id}: {exc.message}") from None


def show(a: Approval) -> str:
    when = f"{a.decided_at:%Y-%m-%d %H:%M} UTC" if a.decided_at else "-"
    because = f" ({a.reason})" if a.reason else ""
    return f"{a.id} {a.state} by {a.decided_by} at {when}{because}: {a.summary}"


@app.command()
def approvals(
    approver: Annotated[str | None, typer.Option(help="Only what this person may decide.")] = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Every pending approval across runs: run, agent, tool, arguments, age, who may decide."""

    async def go() -> list[dict[str, Any]]:
        return await pending(await connect(address), approver)

    rows = call(go)
    shown = [{k: v for k, v in r.items() if k != "digest"} for r in rows]
    text = render.table(shown) if rows else "no pending approvals"
    emit(rows, text, as_json)


def _decide(
    run_id: str,
    approval_id: str | None,
    user: str,
    reason: str,
    approve: bool,
    address: str | None,
    as_json: bool,
) -> None:
    decision = Decision(approval_id=approval_id, approve=approve, approver=user, reason=reason)

    async def go() -> Approval:
        return await decide(await connect(address), run_id, decision)

    approval = call(go)
    emit(approval, show(approval), as_json)


@app.command()
def approve(
    run_id: Run,
    approval_id: Annotated[str | None, typer.Argument(help="Needed if several wait.")] = None,
    user: User = ...,  # type: ignore[assignment]
    reason: Annotated[str, typer.Option(help="Why; recorded with the decision.")] = "",
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Approve a pending request of RUN as USER; prints the recorded decision."""
    _decide(run_id, approval_id, user, reason, True, address, as_json)


@app.command()
def reject(
    run_id: Run,
    approval_id: Annotated[str | None, typer.Argument(help="Needed if several wait.")] = None,
    user: User = ...,  # type: ignore[assignment]
    reason: Annotated[str, typer.Option(help="Why; the agent reads it.")] = "",
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Reject a pending request of RUN as USER; the agent is told, with the reason."""
    _decide(run_id, approval_id, user, reason, False, address, as_json)


@app.command()
def message(
    run_id: Run,
    text: str,
    user: Annotated[str, typer.Option("--as", help="The run's principal.")] = ...,  # type: ignore[assignment]
    address: Address = None,
) -> None:
    """Answer the agent's question, or give it a follow-up for its next turn."""

    async def go() -> MessageAck:
        client = await connect(address)
        await ops.require_open(client, run_id)
        try:
            return await client.get_workflow_handle(run_id).execute_update(
                AgentWorkflow.message, UserMessage(text=text, sender=user)
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            why = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ops.OpError(f"message refused: {why}") from None

    ack = call(go)
    typer.echo(f"answered: {ack.question}" if ack.status == "answered" else "queued for next turn")


@app.command()
def resume(run_id: Run, address: Address = None) -> None:
    """Let a run that needs attention go on; it retries the step that stopped it."""

    async def go() -> None:
        client = await connect(address)
        status = await ops.status(client, run_id)
        if status.status != "needs_attention":
            raise ops.OpError(f"run {run_id} does not need attention (it is {status.status})")
        await client.get_workflow_handle(run_id).signal(AgentWorkflow.resume)

    call(go)
    typer.echo(f"resumed {run_id}")
