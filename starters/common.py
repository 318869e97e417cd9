"""What every agentctl command shares: how it fails (one line, an exit code), calls async work,
prints, and its common options. Command modules import this, never `starters.cli`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import quote

import typer

from durable_agents.starters.errors import EXIT_ERROR, EXIT_UNCONFIRMED

# Command modules import only typer at the top: what a command needs (the Temporal client, the
# agents, the workflow's models) is imported inside it, so `agentctl --help` and `agentctl
# status` start in a fraction of a second (bench/cli_startup.py measures it).

T = TypeVar("T")

Address = Annotated[
    str | None, typer.Option(help="Temporal address (default: TEMPORAL_ADDRESS or 127.0.0.1:7233).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Run = Annotated[str, typer.Argument(metavar="RUN", help="The run (workflow id).")]


def one_line(message: str) -> str:
    """A message as one line, safe to show (it may quote what someone sent)."""
    from durable_agents.starters.render import controls_escaped

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
    """Turn an error an operator can act on into one line and an exit code; return otherwise.

    Ours are recognised by their root type (a module never imported raised none of them, so the
    check loads nothing); the Temporal client's by theirs."""
    unconfirmed_error = _loaded("durable_agents.errors", "Unconfirmed")
    if unconfirmed_error is not None and isinstance(exc, unconfirmed_error):
        unconfirmed(str(exc))
    ours = _loaded("durable_agents.errors", "DurableAgentsError")
    if ours is not None and isinstance(exc, ours):
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


def trace() -> None:
    """Runs started here begin their trace here (exported only if DURABLE_AGENTS_TRACING says)."""
    from durable_agents.workers.telemetry import setup_tracing

    call_sync(lambda: setup_tracing("agentctl", default="propagate"))


def parse_json(text: str, what: str) -> dict[str, Any]:
    from durable_agents.errors import RequestError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"{what} is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object, got {text!r}")
    return value


def ui_base(address: str) -> str:
    """The Temporal UI of the server at `address`: DURABLE_AGENTS_UI_URL, else what `agentctl
    server` announced in the state folder for that address, else the dev server's default."""
    from durable_agents.settings import current
    from durable_agents.starters.devserver import DEFAULT_UI_URL, announced_ui

    settings = current()
    found = settings.ui_url or announced_ui(settings.state_dir, address) or DEFAULT_UI_URL
    return found.rstrip("/")


def ui_link(workflow_id: str, namespace: str, base: str) -> str:
    """The run's page in the Temporal UI (2.54: `/namespaces/<ns>/workflows/<id>`)."""
    return f"{base}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
