"""`agentctl`: start, drive and inspect durable agent runs from a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer

from starters import (
    audit_cli,
    catalog_cli,
    deploy_cli,
    inbox,
    runs,
    services,
    signin,
)
from starters.errors import EXIT_ERROR

# Command modules import only typer at the top: what a command needs is imported inside it, so
# `agentctl --help` and `agentctl status` start in a fraction of a second (bench/cli_startup.py).

# Plugins' own commands (e.g. a world to try agents in) come from this entry point group: each
# names a function that takes the `typer.Typer` and attaches its commands.
COMMANDS_GROUP = "durable_agents.commands"

HELP = (
    (__doc__ or "")
    + "\n\nExit codes: 0 done; 1 refused or failed (one line on stderr says why); 2 a usage "
    "error; 3 a decision or message was sent but not confirmed in time (it may still be "
    "applied: check with `agentctl approvals show RUN` or `agentctl status RUN`)."
)


def new_app() -> typer.Typer:
    # Locals in a traceback could hold inputs or keys: never print them.
    return typer.Typer(
        help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False
    )


def attach(app: typer.Typer) -> typer.Typer:
    """Every command of agentctl, attached here and nowhere else."""
    commands: list[tuple[str | None, Callable[..., None]]] = [
        (None, runs.run),
        (None, runs.status),
        (None, runs.transcript),
        (None, runs.signal),
        (None, runs.result),
        ("list", runs.list_),
        (None, inbox.approve),
        (None, inbox.reject),
        (None, inbox.message),
        (None, inbox.resume),
        ("retry-turn", inbox.retry_turn),
        (None, inbox.abort),
        (None, catalog_cli.agents),
        (None, audit_cli.audit),
        (None, signin.login),
        (None, signin.whoami),
        (None, signin.logout),
        (None, signin.grant),
        (None, services.server),
        (None, services.sim),
        (None, services.worker),
        (None, services.demo),
        ("codec-server", services.codec_server),
    ]
    for name, command in commands:
        app.command(name)(command)
    app.add_typer(inbox.approvals_app, name="approvals")
    app.add_typer(signin.grants_app, name="grants")
    app.add_typer(deploy_cli.deploy_app, name="deploy")
    return app


app = attach(new_app())


def main() -> None:
    attach(app)
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
