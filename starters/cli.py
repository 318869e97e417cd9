"""`agentctl`: start, drive and inspect durable agent runs from a terminal."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from starters import ops, render
from starters.devserver import SetupError
from workers.client import TASK_QUEUE, ServerUnreachable
from workers.codec import CodecConfigError
from workers.telemetry import TelemetryConfigError, setup_tracing
from workflows.models import AgentRun

T = TypeVar("T")
# Locals in a traceback could hold inputs or keys: never print them.
app = typer.Typer(
    help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False
)
STATE = Path(".state")

Address = Annotated[
    str | None, typer.Option(help="Temporal address (default: TEMPORAL_ADDRESS or 127.0.0.1:7233).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 1: what went wrong and what to do about it."""
    line = " ".join(message.split())
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def call(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async operation; turn the errors an operator can act on into one clear line."""
    try:
        return asyncio.run(work())
    except (
        ops.OpError,
        ServerUnreachable,
        SetupError,
        CodecConfigError,
        TelemetryConfigError,
    ) as exc:
        fail(str(exc))
    except RPCError as exc:
        fail(f"the Temporal server refused the request ({exc.status.name}): {exc.message}")
    except TemporalError as exc:
        fail(f"{type(exc).__name__}: {exc}")


def call_sync(work: Callable[[], T]) -> T:
    try:
        return work()
    except (ops.OpError, CodecConfigError) as exc:
        fail(str(exc))


def emit(value: Any, text: str, as_json: bool) -> None:
    if as_json:
        data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text)


def note(text: str) -> None:
    """Say something to the person at the terminal, never into the command's output."""
    typer.echo(text, err=True)


@app.command()
def run(
    agent: str,
    input: Annotated[str, typer.Option("--input", "-i", help="The agent's input as JSON.")] = "{}",
    task: Annotated[str, typer.Option(help="The task in words.")] = "",
    as_user: Annotated[str, typer.Option("--as", help="Principal the agent acts for.")] = "cli",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Granted scope (repeatable); default: the agent's standing grant."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Model route override (repeat: fallbacks).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Workflow id to use.")] = None,
    task_queue: Annotated[
        str, typer.Option(help="Task queue the workers poll (default: DURABLE_AGENTS_TASK_QUEUE).")
    ] = TASK_QUEUE,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of AGENT; prints its id (with --wait, its result)."""
    # Everything the workflow would refuse is refused here, before anything starts.
    data = call_sync(lambda: ops.parse_json(input, "--input"))
    agent_run = AgentRun(
        agent=agent,
        input=data,
        task=task,
        principal=as_user,
        scopes=scope or None,
        model_route=model or None,
    )
    call_sync(lambda: ops.validate_run(agent_run))

    async def go() -> None:
        client = await ops.connect(address)
        handle = await ops.start_run(client, agent_run, run_id, task_queue=task_queue)
        if as_json:
            note(f"started run {handle.id}")
        else:
            typer.echo(f"started run {handle.id}")
        note(f"  {ops.ui_link(handle.id)}")
        if await ops.pollers(client, task_queue) == 0:
            note(
                f"warning: no worker polls task queue {task_queue!r} yet; the run starts when "
                f"one does (`agentctl worker --task-queue {task_queue}`)"
            )
        if wait:
            outcome = await ops.outcome(handle)
            emit(outcome, render.result(outcome), as_json)
        elif as_json:
            emit({"run": handle.id}, "", True)

    call(go)


@app.command()
def status(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """What a run is doing or waiting for, its turn and its token usage."""
    s = call(lambda: _with_client(address, lambda c: ops.status(c, run_id)))
    emit(s, render.status(s), as_json)


@app.command()
def transcript(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """The run's record: task, model replies, tool calls and results, events, waits."""
    entries = call(lambda: _with_client(address, lambda c: ops.transcript(c, run_id)))
    emit([e.model_dump(mode="json") for e in entries], render.transcript(entries), as_json)


@app.command()
def signal(
    run_id: Run,
    event: Annotated[str, typer.Argument(help="The event's name, e.g. clearance_granted.")],
    data: Annotated[str, typer.Option(help="Event payload as JSON.")] = "{}",
    address: Address = None,
) -> None:
    """Send EVENT (e.g. clearance_granted) to a run waiting for outside facts."""
    payload = call_sync(lambda: ops.parse_json(data, "--data"))
    if not event.strip():
        fail("EVENT must not be empty")
    call(lambda: _with_client(address, lambda c: ops.send_event(c, run_id, event, payload)))
    typer.echo(f"sent event {event} to {run_id}")


@app.command()
def result(
    run_id: Run,
    wait: Annotated[bool, typer.Option(help="Wait if the run is still going.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """The outcome and final answer of a finished run."""
    r = call(lambda: _with_client(address, lambda c: ops.result(c, run_id, wait)))
    emit(r, render.result(r), as_json)


@app.command("list")
def list_(
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    state: Annotated[
        str | None,
        typer.Option("--status", help=f"Only runs in this AgentStatus: {', '.join(ops.STATUSES)}."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Agent runs, newest first, from a visibility query on the search attributes."""
    query = call_sync(lambda: ops.list_query(agent, state))
    rows = call(lambda: _with_client(address, lambda c: ops.list_runs(c, query, limit)))
    emit(rows, render.table(rows), as_json)


async def _with_client(address: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    return await work(await ops.connect(address))


def main() -> None:
    from starters import services  # noqa: F401  (registers server, sim, worker, demo)

    try:
        # Runs started here begin their trace here (exported only if DURABLE_AGENTS_TRACING says).
        setup_tracing("agentctl", default="propagate")
    except TelemetryConfigError as exc:
        fail(str(exc))

    code: int | str | None = 0
    try:
        app(prog_name="agentctl")
    except SystemExit as exc:
        code = exc.code
    except Exception:
        sys.excepthook(*sys.exc_info())
        code = 1
    # The Temporal client's Rust threads can abort the interpreter at teardown
    # ("PyGILState_Release ... must be current", temporalio/sdk-python#300), turning a finished
    # command into exit 134. Run the exit handlers, flush, and leave without the teardown.
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code or 0)


if __name__ == "__main__":
    main()
