"""`agentctl`: start, drive and inspect durable agent runs from a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from starters.errors import EXIT_ERROR, EXIT_UNCONFIRMED, OpError, Unconfirmed

if TYPE_CHECKING:
    from temporalio.client import Client

# Command modules import only typer at the top: what a command needs (the Temporal client, the
# agents, the workflow's models) is imported inside it, so `agentctl --help` and `agentctl
# status` start in a fraction of a second (bench/cli_startup.py measures it).

T = TypeVar("T")
# Locals in a traceback could hold inputs or keys: never print them.
app = typer.Typer(
    help=__doc__
    + "\n\nExit codes: 0 done; 1 refused or failed (one line on stderr says why); 2 a usage "
    "error; 3 a decision or message was sent but not confirmed in time (it may still be "
    "applied: check with `agentctl approvals show RUN` or `agentctl status RUN`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

Address = Annotated[
    str | None, typer.Option(help="Temporal address (default: TEMPORAL_ADDRESS or 127.0.0.1:7233).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]

# Errors an operator can act on, by module: a module that was never imported raised none of
# them, so the check needs no import (and costs none).
_OPERATOR_ERRORS = (
    ("workers.client", "ServerUnreachable"),
    ("starters.devserver", "SetupError"),
    ("durable_agents._codec", "CodecConfigError"),
    ("workers.telemetry", "TelemetryConfigError"),
    ("durable_agents._directory", "UnknownPerson"),
    ("durable_agents._catalog", "CatalogError"),
    ("durable_agents._mcp", "MCPConfigError"),
    ("activities.settings", "SettingsError"),
)


def one_line(message: str) -> str:
    """A message as one line, safe to show (it may quote what someone sent)."""
    from starters.render import controls_escaped

    return controls_escaped(" ".join(message.split()))


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 1: what went wrong and what to do about it."""
    typer.secho(f"error: {one_line(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_ERROR)


def unconfirmed(message: str) -> NoReturn:
    """One line on stderr, exit 3: sent, not confirmed; how to check."""
    typer.secho(f"unconfirmed: {one_line(message)}", fg=typer.colors.YELLOW, err=True)
    raise typer.Exit(EXIT_UNCONFIRMED)


def _loaded(module: str, name: str) -> type[BaseException] | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def explain(exc: BaseException) -> None:
    """Turn an error an operator can act on into one line and an exit code; return otherwise."""
    if isinstance(exc, Unconfirmed):
        unconfirmed(str(exc))
    if isinstance(exc, OpError):
        fail(str(exc))
    for module, name in _OPERATOR_ERRORS:
        kind = _loaded(module, name)
        if kind is not None and isinstance(exc, kind):
            fail(str(exc))
    rpc_error = _loaded("temporalio.service", "RPCError")
    if rpc_error is not None and isinstance(exc, rpc_error):
        status = getattr(getattr(exc, "status", None), "name", "?")
        fail(f"the Temporal server refused the request ({status}): {getattr(exc, 'message', exc)}")
    temporal_error = _loaded("temporalio.exceptions", "TemporalError")
    if temporal_error is not None and isinstance(exc, temporal_error):
        fail(f"{type(exc).__name__}: {exc}")


def call(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async operation; turn the errors an operator can act on into one clear line."""
    import asyncio

    try:
        return asyncio.run(work())
    except Exception as exc:
        explain(exc)
        raise


def call_sync(work: Callable[[], T]) -> T:
    try:
        return work()
    except Exception as exc:
        explain(exc)
        raise


def emit(value: Any, text: str, as_json: bool) -> None:
    """`--json`: the value exactly; else the text (already made safe to read)."""
    if as_json:
        import json

        data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text)


def note(text: str) -> None:
    """Say something to the person at the terminal, never into the command's output."""
    typer.echo(text, err=True)


def warn_left_out(problems: dict[str, str]) -> None:
    """Runs a listing left out, one line each on stderr."""
    from durable_agents._vocab.text import printable

    for run_id, why in problems.items():
        note(f"warning: left out {printable(run_id, 200)}: {printable(why, 500)}")


@app.command()
def run(
    agent: str,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who the run acts for: you, signed in (`agentctl login`); if given, must name "
            "you, or a service principal of the directory (a run with no person behind it).",
        ),
    ] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="The agent's input as JSON.")] = "{}",
    task: Annotated[str, typer.Option(help="The task in words.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Granted scope (repeatable); default: the agent's standing grant."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Model route override (repeat: fallbacks).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Workflow id to use.")] = None,
    task_queue: Annotated[
        str | None,
        typer.Option(
            help="Task queue the workers poll (default: DURABLE_AGENTS_TASK_QUEUE or "
            "durable-agents)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of AGENT acting for you (signed in); prints its id and UI link.

    It is granted --scope (default: every scope its tools need); with --wait, prints its
    result. The run carries your proof: it acts for you, and the identity provider records that you
    granted AGENT those scopes (`agentctl grants`)."""
    from durable_agents._vocab import proofs
    from durable_agents._vocab.models import AgentRun
    from starters import ops, render, signin
    from workers.client import TASK_QUEUE

    # Everything the workflow would refuse is refused here, before anything starts.
    service = as_user is not None and call_sync(lambda: ops.service(as_user or ""))
    principal = call_sync(
        lambda: ops.person(as_user or "") if service else signin.signed_in_as(as_user)
    )
    data = call_sync(lambda: ops.parse_json(input, "--input"))
    agent_run = AgentRun(
        agent=agent,
        input=data,
        task=task,
        principal=principal,
        scopes=scope or None,
        model_route=model or None,
    )
    call_sync(lambda: ops.validate_run(agent_run))
    granted = sorted(set(scope or ops.spec(agent).scopes()))
    wid = run_id or ops.new_run_id(agent)
    if not service:  # a service principal's run is code's: no person, no proof
        _, agent_run.proof = call_sync(lambda: signin.proof(proofs.start(wid, agent_run, granted)))
    run_id = wid
    queue = task_queue or TASK_QUEUE
    _trace()

    async def go() -> None:
        client = await ops.connect(address)
        handle = await ops.start_run(client, agent_run, run_id, task_queue=queue)
        if as_json:
            note(f"started run {handle.id}")
        else:
            typer.echo(f"started run {handle.id}")
        ui = ops.ui_base(client.service_client.config.target_host)
        note(f"  {ops.ui_link(handle.id, client.namespace, ui)}")
        if await ops.pollers(client, queue) == 0:
            note(
                f"warning: no worker polls task queue {queue!r} yet; the run starts when "
                f"one does (`agentctl worker --task-queue {queue}`)"
            )
        if wait:
            outcome = await ops.outcome(handle)
            emit(outcome, render.result(outcome), as_json)
        elif as_json:
            emit({"run": handle.id}, "", True)

    call(go)


def _trace() -> None:
    """Runs started here begin their trace here (exported only if DURABLE_AGENTS_TRACING says)."""
    from workers.telemetry import setup_tracing

    call_sync(lambda: setup_tracing("agentctl", default="propagate"))


@app.command()
def status(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """What a run is doing or waiting for, its turn and its token usage."""
    from starters import ops, render

    s = call(lambda: with_client(address, lambda c: ops.status(c, run_id)))
    emit(s, render.status(s), as_json)


@app.command()
def transcript(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """The run's record: task, model replies, tool calls and results, events, waits."""
    from starters import ops, render

    entries = call(lambda: with_client(address, lambda c: ops.transcript(c, run_id)))
    emit([e.model_dump(mode="json") for e in entries], render.transcript(entries), as_json)


@app.command()
def signal(
    run_id: Run,
    event: Annotated[str, typer.Argument(help="The event's name, e.g. clearance_granted.")],
    data: Annotated[str, typer.Option(help="Event payload as JSON.")] = "{}",
    address: Address = None,
) -> None:
    """Send EVENT (e.g. clearance_granted) to a run waiting for outside facts."""
    from durable_agents._vocab.text import printable
    from starters import ops

    payload = call_sync(lambda: ops.parse_json(data, "--data"))
    if not event.strip():
        fail("EVENT must not be empty")
    call(lambda: with_client(address, lambda c: ops.send_event(c, run_id, event, payload)))
    typer.echo(f"sent event {printable(event, 100)} to {printable(run_id, 200)}")


@app.command()
def result(
    run_id: Run,
    wait: Annotated[bool, typer.Option(help="Wait if the run is still going.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """The outcome and final answer of a finished run."""
    from starters import ops, render

    r = call(lambda: with_client(address, lambda c: ops.result(c, run_id, wait)))
    emit(r, render.result(r), as_json)


@app.command("list")
def list_(
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only runs in this AgentStatus (running, waiting_approval, waiting_event, "
            "needs_attention, completed, rejected, aborted, timed_out, budget_exhausted, failed).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Agent runs, newest first, from a visibility query on the search attributes.

    A run that cannot be shown (its workflow task keeps failing) is left out with a warning."""
    from starters import ops, render

    query = call_sync(lambda: ops.list_query(agent, state))
    problems: dict[str, str] = {}
    rows = call(lambda: with_client(address, lambda c: ops.list_runs(c, query, limit, problems)))
    warn_left_out(problems)
    emit(rows, render.table(rows), as_json)


async def with_client(address: str | None, work: Callable[[Client], Awaitable[T]]) -> T:
    from starters import ops

    return await work(await ops.connect(address))


def register_commands() -> None:
    """Every command of agentctl (their modules import only typer at the top)."""
    from starters import audit_cli, catalog_cli, deploy_cli, inbox, services, signin  # noqa: F401


def main() -> None:
    register_commands()
    code: int | str | None = 0
    try:
        app(prog_name="agentctl")
    except SystemExit as exc:
        code = exc.code
    except BrokenPipeError:
        code = EXIT_ERROR  # quietly: see _flush
    except Exception:
        sys.excepthook(*sys.exc_info())
        code = EXIT_ERROR
    # The Temporal client's Rust threads can abort the interpreter at teardown
    # ("PyGILState_Release ... must be current", temporalio/sdk-python#300), turning a finished
    # command into exit 134. Run the exit handlers, flush, and leave without the teardown.
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = EXIT_ERROR
    import atexit

    atexit._run_exitfuncs()
    code = _flush(code or 0)
    os._exit(code)


def _flush(code: int) -> int:
    """Flush our output. A reader that went away (`agentctl list | head -0`) is no error worth a
    traceback: exit 1 quietly, as Click does when a write fails inside a command. (SIGPIPE keeps
    Python's handling, ignored, so servers and workers never die of a closed socket.)"""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or EXIT_ERROR
    return code


if __name__ == "__main__":
    main()
