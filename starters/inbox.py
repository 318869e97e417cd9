"""The operator's inbox: `agentctl approvals [show] | approve | reject | message | resume | …`.

Pending approvals are found with a visibility query on the `AgentStatus` search attribute and
read from each run's `status` query; decisions go through the `decide` update, so a refused
decision (wrong approver, unknown or already decided approval, a stale digest) is an error here
and never reaches the run's history. Connections, queries and updates have the operator's short
deadlines (`starters.ops`): a wrong address or a run no worker serves fails in seconds, saying
why. A decision or message that was sent but not confirmed in time exits 3, saying how to check.

Only typer is imported at the top (see starters/cli.py); each command imports what it needs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from starters.cli import app, call, call_sync, emit, fail, warn_left_out
from starters.errors import OpError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from temporalio.client import Client

    from durable_agents._vocab.models import Approval, Decision, MessageAck

M = TypeVar("M", bound="BaseModel")
Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]
Address = Annotated[str | None, typer.Option(help="Temporal address.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
User = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who decides: must be who this machine is signed in as (`agentctl login`); the "
        "run takes the decision from the signed-in person's proof.",
    ),
]
Digest = Annotated[
    str | None,
    typer.Option(
        help="The digest of the arguments you read (`agentctl approvals show RUN`): the decision "
        "is refused if the request is no longer that one."
    ),
]
DIGEST = re.compile(r"[0-9a-f]{16}")


def age(since: datetime) -> str:
    minutes = int((datetime.now(UTC) - since).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // 1440} days"


def _why(exc: BaseException) -> str:
    """What went wrong reading a run, in a few words."""
    from temporalio.service import RPCError

    if isinstance(exc, OpError):
        return str(exc)
    if isinstance(exc, RPCError):
        return f"its status query failed ({exc.status.name}): {exc.message}"
    return f"its status could not be read ({type(exc).__name__}: {exc})"


async def pending(
    client: Client, approver: str | None, problems: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Pending approvals across runs. A run that cannot answer its `status` query (no worker
    serves it, its workflow task keeps failing, any other error) is left out and named in
    `problems` (run id → why), instead of taking the whole inbox down."""
    import asyncio

    from durable_agents._approvals import may_decide
    from durable_agents._vocab.models import AgentStatus
    from starters import ops

    query = (
        f"WorkflowType = '{ops.WORKFLOW}' AND AgentStatus = 'waiting_approval' "
        f"AND {ops.ONE_ROW_PER_RUN}"
    )
    ids = [wf.id async for wf in client.list_workflows(query, limit=500)]
    gate = asyncio.Semaphore(ops.CONCURRENCY)

    async def read(run_id: str) -> AgentStatus | None:
        async with gate:
            try:
                return await ops.status(client, run_id)
            except Exception as exc:  # one run's trouble is never the inbox's
                if problems is not None:
                    problems[run_id] = _why(exc)
                return None

    rows = []
    for run_id, status in zip(ids, await asyncio.gather(*map(read, ids)), strict=True):
        if status is None:
            continue
        for a in status.approvals:
            if a.state != "pending":
                continue
            if approver and not may_decide(
                approver, a.requested_for, a.groups, ops.catalog().directory
            ):
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
    once the run has finished (an operator retrying after a lost answer sees what happened).
    Sent but not confirmed in time: `Unconfirmed` (exit 3)."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError

    from durable_agents._vocab.models import Approval
    from starters import ops

    desc = await ops.describe(client, run_id)
    finished = ops.finished(desc)
    if finished is None:
        handle = client.get_workflow_handle(run_id)
        decision = await proven(client, run_id, decision)
        try:
            return await ops.update(
                client,
                run_id,
                desc.task_queue,
                "decision",
                lambda: handle.execute_update(ops.DECIDE_UPDATE, decision, result_type=Approval),
                check=f"`agentctl approvals show {run_id}` or `agentctl status {run_id}`",
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            text = cause.message if isinstance(cause, ApplicationError) else str(cause)
            if decision.digest is not None and "digest" in text:
                text += f" (`agentctl approvals show {run_id}` prints what waits, with its digest)"
            raise OpError(f"decision refused: {text}") from None
        except RPCError as exc:
            finished = ops.finished(await ops.describe(client, run_id))
            if finished is None:
                raise OpError(f"decision not delivered to {run_id}: {exc.message}") from None
    # Finished (perhaps just now): only an exact repeat of a recorded decision has an answer.
    status = await ops.status(client, run_id)
    earlier = recorded(status.approvals, decision)
    if earlier is None:
        raise OpError(f"run {run_id!r} has finished ({finished}); it takes no more decisions")
    return earlier


def show(a: Approval) -> str:
    """A recorded decision on one line."""
    from durable_agents._vocab.text import printable

    when = f"{a.decided_at:%Y-%m-%d %H:%M} UTC" if a.decided_at else "-"
    because = f" ({printable(a.reason, 200)})" if a.reason else ""
    return f"{a.id} {a.state} by {a.decided_by} at {when}{because}: {printable(a.summary, 400)}"


approvals_app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(approvals_app, name="approvals")


@approvals_app.callback()
def approvals(
    ctx: typer.Context,
    approver: Annotated[str | None, typer.Option(help="Only what this person may decide.")] = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Every pending approval across runs; `approvals show RUN` prints one in full.

    A row: run, agent, approval, tool, arguments, age, who may decide, digest. A run that cannot
    answer is left out with a warning; the rest of the inbox is shown."""
    if ctx.invoked_subcommand is not None:
        return
    from starters import ops, render

    who = call_sync(lambda: ops.person(approver, "--approver")) if approver is not None else None
    problems: dict[str, str] = {}

    async def go() -> list[dict[str, Any]]:
        return await pending(await ops.connect(address), who, problems)

    rows = call(go)
    warn_left_out(problems)
    text = render.table(rows) if rows else "no pending approvals"
    emit(rows, text, as_json)


@approvals_app.command("show")
def approvals_show(
    run_id: Run,
    approval_id: Annotated[
        str | None, typer.Argument(metavar="[APPROVAL]", help="One approval; default: all.")
    ] = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """An approval in full: every argument (the whole email, the whole refund), the tool, the
    rule, who may decide, when it was asked and expires, and its digest (`approve --digest`)."""
    from starters import ops, render

    async def go() -> Any:
        return await ops.status(await ops.connect(address), run_id)

    status = call(go)
    chosen = [a for a in status.approvals if approval_id in (None, a.id)]
    if approval_id is not None and not chosen:
        known = ", ".join(a.id for a in status.approvals) or "none"
        fail(f"no approval {approval_id!r} on run {run_id}; it has: {known}")
    if as_json:
        emit(chosen[0] if approval_id else [a.model_dump(mode="json") for a in chosen], "", True)
        return
    if not chosen:
        typer.echo(f"run {run_id} has asked for no approval")
        return
    typer.echo("\n\n".join(render.approval(a, status.agent) for a in chosen))


def _decision(
    approval_id: str | None, approve: bool, user: str | None, reason: str, digest: str | None
) -> Decision:
    """The decision as the run reads it, checked here first: who (the signed-in person; --as
    must be them), the digest's form; the proof is added once the approval is known."""
    from durable_agents._vocab.models import Decision
    from starters import signin

    approver = signin.signed_in_as(user)
    if digest is not None and not DIGEST.fullmatch(digest):
        raise OpError(
            f"--digest {digest!r} is not a digest (16 hex characters): "
            "`agentctl approvals show RUN` prints each approval's arguments and digest"
        )
    return built(
        Decision,
        approval_id=approval_id,
        approve=approve,
        approver=approver,
        reason=reason,
        digest=digest,
    )


async def proven(client: Client, run_id: str, decision: Decision) -> Decision:
    """The decision with its approval named and a proof, from the signed-in person, for
    exactly it: this approval of this run, this verdict, these arguments (their digest), this
    reason."""
    import asyncio

    from durable_agents._vocab import proofs
    from starters import ops, signin

    if decision.approval_id is not None and decision.digest is not None:
        # What the approver read names it all: no need to ask the run (whose worker may be
        # away: the decision then waits for one).
        details = proofs.decision(
            run_id, decision.approval_id, decision.approve, decision.digest, decision.reason
        )
        person, proof = await asyncio.to_thread(signin.proof, details)
        return decision.model_copy(update={"approver": person, "proof": proof})
    status = await ops.status(client, run_id)
    pending = [a for a in status.approvals if a.state == "pending"]
    if decision.approval_id is not None:
        chosen = [a for a in status.approvals if a.id == decision.approval_id]
    else:
        chosen = pending if len(pending) == 1 else []
        if not pending and status.approvals:  # a repeat of a decision already made
            chosen = [status.approvals[-1]]
    if not chosen:
        ids = ", ".join(a.id for a in pending) or "none"
        if decision.approval_id is not None:
            raise OpError(
                f"decision refused: no approval {decision.approval_id!r} on this run; "
                f"pending: {ids}"
            )
        raise OpError(f"decision refused: name the approval to decide; pending: {ids}")
    approval = chosen[0]
    if decision.digest is not None and decision.digest != approval.digest:
        raise OpError(
            f"decision refused: approval {approval.id} is for arguments with digest "
            f"{approval.digest}, not {decision.digest}: look again with `agentctl approvals "
            f"show {run_id}`"
        )
    details = proofs.decision(
        run_id, approval.id, decision.approve, approval.digest, decision.reason
    )
    person, proof = await asyncio.to_thread(signin.proof, details)
    return decision.model_copy(
        update={"approval_id": approval.id, "approver": person, "proof": proof}
    )


def built(model: type[M], **fields: Any) -> M:
    """A message into a run, built as the run reads it; what it would refuse for its form (a
    reason over the limit, an empty text) is refused here, in one line."""
    from pydantic import ValidationError

    from durable_agents._spec import problems

    try:
        return model(**fields)
    except ValidationError as exc:
        raise OpError(f"cannot send this {model.__name__}: {problems(exc)}") from None


def _decide(
    run_id: str,
    approval_id: str | None,
    user: str | None,
    reason: str,
    approve: bool,
    digest: str | None,
    address: str | None,
    as_json: bool,
) -> None:
    from starters import ops

    decision = call_sync(lambda: _decision(approval_id, approve, user, reason, digest))

    async def go() -> Approval:
        return await decide(await ops.connect(address), run_id, decision)

    approval = call(go)
    emit(approval, show(approval), as_json)


@app.command()
def approve(
    run_id: Run,
    user: User,
    approval_id: Annotated[str | None, typer.Argument(help="Needed if several wait.")] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded with the decision.")] = "",
    digest: Digest = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Approve a pending request of RUN as USER; prints the recorded decision.

    Exit 3: sent but not confirmed in time (it may still be applied; `agentctl approvals show
    RUN` says)."""
    _decide(run_id, approval_id, user, reason, True, digest, address, as_json)


@app.command()
def reject(
    run_id: Run,
    user: User,
    approval_id: Annotated[str | None, typer.Argument(help="Needed if several wait.")] = None,
    reason: Annotated[str, typer.Option(help="Why; the agent reads it.")] = "",
    digest: Digest = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Reject a pending request of RUN as USER; the agent is told, with the reason.

    Exit 3: sent but not confirmed in time (it may still be applied; `agentctl approvals show
    RUN` says)."""
    _decide(run_id, approval_id, user, reason, False, digest, address, as_json)


@app.command()
def message(
    run_id: Run,
    text: str,
    user: Annotated[
        str | None,
        typer.Option("--as", help="The run's principal: must be who this machine is signed in as."),
    ] = None,
    address: Address = None,
) -> None:
    """Answer the agent's question, or give it a follow-up for its next turn.

    Exit 3: sent but not confirmed in time (it may still be taken; `agentctl transcript RUN`
    shows it once it is)."""
    from starters import signin

    call_sync(lambda: signin.signed_in_as(user))

    async def go() -> MessageAck:
        import asyncio

        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.exceptions import ApplicationError

        from durable_agents._vocab import proofs
        from durable_agents._vocab.models import MessageAck, UserMessage
        from starters import ops

        client = await ops.connect(address)
        desc = await ops.describe(client, run_id)
        finished = ops.finished(desc)
        if finished is not None:
            raise OpError(f"run {run_id!r} has finished ({finished}); it takes no more messages")
        handle = client.get_workflow_handle(run_id)
        msg = built(UserMessage, text=text)
        sender, msg.proof = await asyncio.to_thread(signin.proof, proofs.message(run_id, text))
        msg.sender = sender
        try:
            return await ops.update(
                client,
                run_id,
                desc.task_queue,
                "message",
                lambda: handle.execute_update(ops.MESSAGE_UPDATE, msg, result_type=MessageAck),
                check=f"`agentctl transcript {run_id}` or `agentctl status {run_id}`",
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            why = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise OpError(f"message refused: {why}") from None

    ack = call(go)
    if ack.status == "answered":
        from durable_agents._vocab.text import printable

        typer.echo(f"answered: {printable(ack.question or '', 400)}")
    else:
        typer.echo("queued for next turn")


Operator = Annotated[
    str | None,
    typer.Option("--as", help="Who asks: must be who this machine is signed in as."),
]


async def _operate(address: str | None, run_id: str, signal: str, arg: Any) -> None:
    """Check the run needs attention, then send the operator's choice with a proof for it."""
    import asyncio

    from durable_agents._vocab import proofs
    from starters import ops, signin

    client = await ops.connect(address)
    status = await ops.status(client, run_id)
    if status.status != "needs_attention":
        raise OpError(f"run {run_id} does not need attention (it is {status.status})")
    person, arg.proof = await asyncio.to_thread(
        signin.proof, proofs.operator(run_id, signal, arg.reason)
    )
    arg.by = person
    await client.get_workflow_handle(run_id).signal(signal, arg)


OperatorReason = Annotated[str, typer.Option(help="Why; recorded in the run's transcript.")]


def _operator_request(user: str | None, reason: str) -> Any:
    from durable_agents._vocab.models import OperatorRequest
    from starters import signin

    signin.signed_in_as(user)
    return built(OperatorRequest, reason=reason)


@app.command()
def resume(
    run_id: Run, user: Operator, reason: OperatorReason = "", address: Address = None
) -> None:
    """A run that needs attention retries the step that stopped it (e.g. after a key fix)."""
    from starters import ops

    request = call_sync(lambda: _operator_request(user, reason))
    call(lambda: _operate(address, run_id, ops.RESUME_SIGNAL, request))
    typer.echo(f"resumed {run_id}: it retries the step that stopped it")


@app.command("retry-turn")
def retry_turn(
    run_id: Run, user: Operator, reason: OperatorReason = "", address: Address = None
) -> None:
    """A run that needs attention hands the problem to the model as the step's result."""
    from starters import ops

    request = call_sync(lambda: _operator_request(user, reason))
    call(lambda: _operate(address, run_id, ops.RETRY_TURN_SIGNAL, request))
    typer.echo(f"{run_id}: the model hears of the problem and takes its turn again")


@app.command()
def abort(
    run_id: Run,
    reason: Annotated[str, typer.Option(help="Why; recorded in the run's answer.")],
    user: Operator,
    address: Address = None,
) -> None:
    """End a run that needs attention, as `aborted`; a saga undoes its steps first."""
    from durable_agents._vocab.models import AbortRequest
    from durable_agents._vocab.text import printable
    from starters import ops, signin

    call_sync(lambda: signin.signed_in_as(user))
    if not reason.strip():
        fail("--reason must say why the run is aborted")
    request = call_sync(lambda: built(AbortRequest, reason=reason))
    call(lambda: _operate(address, run_id, ops.ABORT_SIGNAL, request))
    typer.echo(f"aborted {run_id}: {printable(reason, 400)}")
