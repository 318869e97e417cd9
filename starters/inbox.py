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
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from durable_agents.errors import RequestError
from durable_agents.starters.common import call, call_sync, emit, fail, warn_left_out
from durable_agents.starters.connect import agents, with_client

if TYPE_CHECKING:
    from pydantic import BaseModel

    from durable_agents._vocab.schemas import Approval, Decision, MessageAck

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
    from durable_agents import _ops as ops
    from durable_agents.starters import render

    who = call_sync(lambda: ops.person(approver, "--approver")) if approver is not None else None
    problems: dict[str, str] = {}

    async def go() -> list[dict[str, Any]]:
        return await (await agents(address)).pending_approvals(who, problems)

    rows = call(go)
    warn_left_out(problems)
    shown = ("run", "agent", "approval", "tool", "arguments", "age", "may decide", "digest")
    table = [{k: r[k] for k in shown} for r in rows]
    text = render.table(table) if rows else "no pending approvals"
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
    from durable_agents.starters import render

    async def go() -> Any:
        return await (await agents(address)).run(run_id).status()

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
    from durable_agents._ops import built
    from durable_agents._vocab.schemas import Decision
    from durable_agents.starters import signin

    approver = signin.signed_in_as(user)
    if digest is not None and not DIGEST.fullmatch(digest):
        raise RequestError(
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


def _decide(
    run_id: str,
    approval_id: str | None,
    user: str | None,
    reason: str,
    approve: bool,
    digest: str | None,
    address: str | None,
    as_json: bool,
    edit: list[str] | None = None,
) -> None:
    decision = call_sync(lambda: _decision(approval_id, approve, user, reason, digest))
    changes = _changes(edit or [])

    async def go() -> Approval:
        run = (await agents(address)).run(run_id)
        if changes:
            edited = await _edited(run, decision, changes)
            return await run.decide(edited)
        return await run.decide(decision)

    approval = call(go)
    emit(approval, show(approval), as_json)


def _changes(edit: list[str]) -> dict[str, str]:
    """`--edit NAME=VALUE` options as NAME: text (`@FILE` reads the file, `@-` stdin)."""
    import sys
    from pathlib import Path

    changes: dict[str, str] = {}
    for item in edit:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--edit {item!r}: give NAME=VALUE (or NAME=@FILE for a file's text)")
        if name in changes:
            fail(f"--edit names {name} twice")
        if value.startswith("@"):
            where = value[1:]
            try:
                value = sys.stdin.read() if where == "-" else Path(where).read_text()
            except OSError as exc:
                fail(f"--edit {name}: cannot read {where}: {exc.strerror}")
        changes[name] = value
    return changes


async def _edited(run: Any, decision: Decision, changes: dict[str, str]) -> Decision:
    """The decision with every argument of its approval, `changes` applied."""
    from durable_agents._ops import chosen, edits

    status = await run.status()
    approval = chosen(status.approvals, decision, status.workflow_id)
    return decision.model_copy(
        update={
            "approval_id": approval.id,
            "digest": approval.digest,
            "arguments": edits(approval, changes),
        }
    )


def approve(
    run_id: Run,
    user: User = None,
    approval_id: Annotated[str | None, typer.Argument(help="Needed if several wait.")] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded with the decision.")] = "",
    digest: Digest = None,
    edit: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="Edit then approve (where the rule allows it): the tool runs with this "
            "argument changed; NAME=@FILE takes a file's text. Repeat for more arguments.",
        ),
    ] = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Approve a pending request of RUN as USER; prints the recorded decision.

    With --edit, the tool runs with the edited arguments, the agent is told what changed, and
    the record keeps both digests.

    Exit 3: sent but not confirmed in time (it may still be applied; `agentctl approvals show
    RUN` says)."""
    _decide(run_id, approval_id, user, reason, True, digest, address, as_json, edit)


def reject(
    run_id: Run,
    user: User = None,
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
    from durable_agents.starters import signin

    call_sync(lambda: signin.signed_in_as(user))

    async def go() -> MessageAck:
        return await (await agents(address)).run(run_id).message(text)

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


OperatorReason = Annotated[str, typer.Option(help="Why; recorded in the run's transcript.")]


def _operator_request(user: str | None, reason: str) -> None:
    """Checked here first: who asks (the signed-in person) and the reason's form."""
    from durable_agents._ops import built
    from durable_agents._vocab.schemas import OperatorRequest
    from durable_agents.starters import signin

    signin.signed_in_as(user)
    built(OperatorRequest, reason=reason)


def resume(
    run_id: Run, user: Operator = None, reason: OperatorReason = "", address: Address = None
) -> None:
    """A run that needs attention retries the step that stopped it (e.g. after a key fix)."""
    call_sync(lambda: _operator_request(user, reason))
    call(lambda: with_client(address, lambda c: c.run(run_id).resume(reason)))
    typer.echo(f"resumed {run_id}: it retries the step that stopped it")


def retry_turn(
    run_id: Run, user: Operator = None, reason: OperatorReason = "", address: Address = None
) -> None:
    """A run that needs attention hands the problem to the model as the step's result."""
    call_sync(lambda: _operator_request(user, reason))
    call(lambda: with_client(address, lambda c: c.run(run_id).retry_turn(reason)))
    typer.echo(f"{run_id}: the model hears of the problem and takes its turn again")


def abort(
    run_id: Run,
    reason: Annotated[str, typer.Option(help="Why; recorded in the run's answer.")],
    user: Operator = None,
    address: Address = None,
) -> None:
    """End a run that needs attention, as `aborted`; a saga undoes its steps first."""
    from durable_agents._ops import built
    from durable_agents._vocab.schemas import AbortRequest
    from durable_agents._vocab.text import printable
    from durable_agents.starters import signin

    call_sync(lambda: signin.signed_in_as(user))
    if not reason.strip():
        fail("--reason must say why the run is aborted")
    call_sync(lambda: built(AbortRequest, reason=reason))
    call(lambda: with_client(address, lambda c: c.run(run_id).abort(reason)))
    typer.echo(f"aborted {run_id}: {printable(reason, 400)}")
