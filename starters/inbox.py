"""The operator's inbox: `agentctl approvals | approve | reject | message | resume`.

Pending approvals are found with a visibility query on the `AgentStatus` search attribute and
read from each run's `status` query; decisions go through the `decide` update, so a refused
decision (wrong approver, unknown or already decided approval) is an error here and never
reaches the run's history. Connections, queries and updates have the operator's short deadlines
(`starters.ops`): a wrong address or a run no worker serves fails in seconds, saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from agents.approvals import may_decide
from starters import ops, render
from starters.cli import app, call, emit, note
from starters.ops import connect
from workflows.agent import AgentWorkflow
from workflows.models import AbortRequest, AgentStatus, Approval, Decision, MessageAck, UserMessage

T = TypeVar("T")

Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]
Address = Annotated[str | None, typer.Option(help="Temporal address.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
User = Annotated[str, typer.Option("--as", help="Who decides (checked against the policy).")]


def age(since: datetime) -> str:
    minutes = int((datetime.now(UTC) - since).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // 1440} days"


async def pending(
    client: Client, approver: str | None, problems: list[str] | None = None
) -> list[dict[str, Any]]:
    """Pending approvals across runs; a run that cannot answer its `status` query (no worker
    serves it) is left out and named in `problems`, instead of holding up the whole inbox."""
    query = (
        f"WorkflowType = 'AgentWorkflow' AND AgentStatus = 'waiting_approval' "
        f"AND {ops.ONE_ROW_PER_RUN}"
    )
    ids = [wf.id async for wf in client.list_workflows(query, limit=500)]

    async def read(run_id: str) -> AgentStatus | None:
        try:
            return await ops.status(client, run_id)
        except ops.OpError as exc:
            if problems is not None:
                problems.append(str(exc))
            return None

    rows = []
    for run_id, status in zip(ids, await asyncio.gather(*map(read, ids)), strict=True):
        if status is None:
            continue
        for a in status.approvals:
            if a.state != "pending":
                continue
            if approver and not may_decide(approver, a.requested_for, a.groups):
                continue
            rows.append(
                {
                    "run": run_id,
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


def _finished(desc: WorkflowExecutionDescription) -> str | None:
    """None while the run is open, else how it ended (completed, failed, …)."""
    if desc.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return None
    return desc.status.name.lower() if desc.status else "closed"


async def _update(
    client: Client, run_id: str, queue: str, what: str, send: Callable[[], Awaitable[T]]
) -> T:
    """Deliver an update within the operator's deadline: a worker checks every update, and
    with none running the SDK would wait for one indefinitely."""
    seen = await ops.pollers(client, queue)
    deadline = ops.NO_WORKER_QUERY_TIMEOUT if seen == 0 else ops.QUERY_TIMEOUT
    try:
        return await asyncio.wait_for(send(), deadline.total_seconds())
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # the SDK's, on cancel
        why = (
            f"no worker polls its task queue {queue!r}"
            if seen == 0
            else f"no worker on its task queue {queue!r} answered"
        )
        raise ops.OpError(
            f"{what} not confirmed: run {run_id!r} did not answer within "
            f"{deadline.total_seconds():g} s ({why}); start one with "
            f"`agentctl worker --task-queue {queue}`, then check `agentctl status {run_id}`"
        ) from None


def recorded(approvals: list[Approval], d: Decision) -> Approval | None:
    """The decision already on record that `d` exactly repeats, if any."""
    verdict = "approved" if d.approve else "rejected"
    same = [
        a
        for a in approvals
        if a.decided_by == d.approver
        and a.state == verdict
        and d.approval_id in (None, a.id)
        and d.digest in (None, a.digest)
    ]
    return same[-1] if same else None


async def decide(client: Client, run_id: str, decision: Decision) -> Approval:
    """Decide through the `decide` update; an exact repeat returns the recorded decision, also
    once the run has finished (an operator retrying after a lost answer sees what happened)."""
    desc = await ops.describe(client, run_id)
    finished = _finished(desc)
    if finished is None:
        handle = client.get_workflow_handle(run_id)
        try:
            return await _update(
                client,
                run_id,
                desc.task_queue,
                "decision",
                lambda: handle.execute_update(AgentWorkflow.decide, decision),
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            text = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ops.OpError(f"decision refused: {text}") from None
        except RPCError as exc:
            finished = _finished(await ops.describe(client, run_id))
            if finished is None:
                raise ops.OpError(f"decision not delivered to {run_id}: {exc.message}") from None
    # Finished (perhaps just now): only an exact repeat of a recorded decision has an answer.
    status = await ops.status(client, run_id)
    earlier = recorded(status.approvals, decision)
    if earlier is None:
        raise ops.OpError(f"run {run_id!r} has finished ({finished}); it takes no more decisions")
    return earlier


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
    problems: list[str] = []

    async def go() -> list[dict[str, Any]]:
        return await pending(await connect(address), approver, problems)

    rows = call(go)
    for problem in problems:
        note(f"warning: left out: {problem}")
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
        desc = await ops.describe(client, run_id)
        finished = _finished(desc)
        if finished is not None:
            raise ops.OpError(
                f"run {run_id!r} has finished ({finished}); it takes no more messages"
            )
        handle = client.get_workflow_handle(run_id)
        try:
            return await _update(
                client,
                run_id,
                desc.task_queue,
                "message",
                lambda: handle.execute_update(
                    AgentWorkflow.message, UserMessage(text=text, sender=user)
                ),
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            why = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ops.OpError(f"message refused: {why}") from None

    ack = call(go)
    typer.echo(f"answered: {ack.question}" if ack.status == "answered" else "queued for next turn")


async def _operate(address: str | None, run_id: str, send: Any) -> None:
    """Check the run needs attention, then send the operator's choice."""
    client = await connect(address)
    status = await ops.status(client, run_id)
    if status.status != "needs_attention":
        raise ops.OpError(f"run {run_id} does not need attention (it is {status.status})")
    await send(client.get_workflow_handle(run_id))


@app.command()
def resume(run_id: Run, address: Address = None) -> None:
    """A run that needs attention retries the step that stopped it (e.g. after a key fix)."""
    call(lambda: _operate(address, run_id, lambda h: h.signal(AgentWorkflow.resume)))
    typer.echo(f"resumed {run_id}: it retries the step that stopped it")


@app.command("retry-turn")
def retry_turn(run_id: Run, address: Address = None) -> None:
    """A run that needs attention hands the problem to the model as the step's result."""
    call(lambda: _operate(address, run_id, lambda h: h.signal(AgentWorkflow.retry_turn)))
    typer.echo(f"{run_id}: the model hears of the problem and takes its turn again")


@app.command()
def abort(
    run_id: Run,
    reason: Annotated[str, typer.Option(help="Why; recorded in the run's answer.")] = ...,  # type: ignore[assignment]
    user: Annotated[str, typer.Option("--as", help="Who aborts.")] = "operator",
    address: Address = None,
) -> None:
    """End a run that needs attention, as `aborted`; a saga undoes its steps first."""
    request = AbortRequest(reason=reason, by=user)
    call(lambda: _operate(address, run_id, lambda h: h.signal(AgentWorkflow.abort, request)))
    typer.echo(f"aborted {run_id}: {reason}")
