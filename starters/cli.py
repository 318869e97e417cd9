"""`agentctl`: start, drive and inspect durable agent runs from a terminal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from starters import ops, render
from starters.devserver import SetupError
from workers.client import ServerUnreachable, connect
from workflows.models import AgentRun

T = TypeVar("T")
app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
STATE = Path(".state")

Address = Annotated[
    str | None, typer.Option(help="Temporal address (default: TEMPORAL_ADDRESS or 127.0.0.1:7233).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def call(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async operation; turn the errors an operator can act on into one clear line."""
    try:
        return asyncio.run(work())
    except (ops.OpError, ServerUnreachable, SetupError) as exc:
        fail(str(exc))
        raise  # unreachable; fail() exits


def emit(value: Any, text: str, as_json: bool) -> None:
    if as_json:
        data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text)


@app.command()
def run(
    agent: str,
    input: Annotated[str, typer.Option("--input", "-i", help="The agent's input as JSON.")] = "{}",
    task: Annotated[str, typer.Option(help="The task in words.")] = "",
    as_user: Annotated[str, typer.Option("--as", help="Principal the agent acts for.")] = "cli",
    scope: Annotated[list[str] | None, typer.Option(help="Granted scope (repeatable).")] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Model route override (repeat: fallbacks).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Workflow id to use.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of AGENT."""
    data = call_sync(lambda: ops.parse_json(input, "--input"))
    agent_run = AgentRun(
        agent=agent,
        input=data,
        task=task,
        principal=as_user,
        scopes=scope or [],
        model_route=model or None,
    )
    call_sync(lambda: ops.validate_run(agent_run))

    async def go() -> None:
        client = await connect(address)
        handle = await ops.start_run(client, agent_run, run_id)
        typer.echo(f"started run {handle.id}\n  {ops.ui_link(handle.id)}", err=as_json)
        if wait:
            outcome = await handle.result()
            emit(outcome, render.result(outcome), as_json)
        elif as_json:
            emit({"run": handle.id}, "", True)

    call(go)


def call_sync(work: Callable[[], T]) -> T:
    try:
        return work()
    except ops.OpError as exc:
        fail(str(exc))
        raise


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """What a run is doing or waiting for, its turn and its token usage."""
    s = call(lambda: _with_client(address, lambda c: ops.status(c, run_id)))
    emit(s, render.status(s), as_json)


@app.command()
def transcript(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """The run's record: task, model replies, tool calls and results, events, waits."""
    entries = call(lambda: _with_client(address, lambda c: ops.transcript(c, run_id)))
    emit([e.model_dump(mode="json") for e in entries], render.transcript(entries), as_json)


@app.command()
def signal(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    event: str,
    data: Annotated[str, typer.Option(help="Event payload as JSON.")] = "{}",
    address: Address = None,
) -> None:
    """Send EVENT (e.g. clearance_granted) to a run waiting for outside facts."""
    payload = call_sync(lambda: ops.parse_json(data, "--data"))
    call(lambda: _with_client(address, lambda c: ops.send_event(c, run_id, event, payload)))
    typer.echo(f"sent event {event} to {run_id}")


@app.command()
def result(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
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
        typer.Option("--status", help="Only runs in this AgentStatus (e.g. waiting_event)."),
    ] = None,
    limit: int = 50,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Agent runs, newest first, from a visibility query on the search attributes."""
    clauses = ["WorkflowType = 'AgentWorkflow'"]
    clauses += [f"AgentName = '{agent}'"] if agent else []
    clauses += [f"AgentStatus = '{state}'"] if state else []
    query = " AND ".join(clauses)
    rows = call(lambda: _with_client(address, lambda c: ops.list_runs(c, query, limit)))
    emit(rows, render.table(rows), as_json)


async def _with_client(address: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    return await work(await connect(address))


def main() -> None:
    from starters import services  # noqa: F401  (registers server, sim, worker, demo)

    app(prog_name="agentctl")


if __name__ == "__main__":
    main()
