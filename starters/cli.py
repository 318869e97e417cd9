"""`agentctl`: start, drive and inspect durable agent runs from a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer

from durable_agents.starters import (
    audit_cli,
    catalog_cli,
    deploy_cli,
    inbox,
    runs,
    services,
    signin,
)
from durable_agents.starters.errors import EXIT_ERROR

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
        (None, runs.watch),
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
        (None, services.worker),
        ("codec-server", services.codec_server),
        (None, services.console),
    ]
    for name, command in commands:
        app.command(name)(command)
    app.add_typer(inbox.approvals_app, name="approvals")
    app.add_typer(signin.grants_app, name="grants")
    app.add_typer(deploy_cli.deploy_app, name="deploy")
    attach_plugins(app)
    return app


def attach_plugins(app: typer.Typer) -> None:
    """The commands of installed plugins (entry points of COMMANDS_GROUP), each plugin's all or
    none. A plugin that fails to load, raises while attaching, or names a command agentctl
    already has adds nothing and is one line on stderr; every other command still works."""
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group=COMMANDS_GROUP), key=lambda p: p.name):
        commands, groups = len(app.registered_commands), len(app.registered_groups)
        taken = set(_names(app))
        try:
            point.load()(app)
            added = _names(app, commands, groups)
            clash = sorted(set(added) & taken)
            if clash:
                raise ValueError(f"it names commands agentctl already has: {', '.join(clash)}")
            twice = sorted({n for n in added if added.count(n) > 1})
            if twice:
                raise ValueError(f"it names commands twice: {', '.join(twice)}")
        except Exception as exc:  # noqa: BLE001 - any plugin's error, said in one line
            del app.registered_commands[commands:], app.registered_groups[groups:]
            dist = f"{point.dist.name} {point.dist.version}, " if point.dist else ""
            said = " ".join(str(exc).split())[:300]
            print(
                f"warning: plugin {point.name!r} ({dist}{point.value}) adds no commands: "
                f"{type(exc).__name__}: {said}",
                file=sys.stderr,
            )


def _names(app: typer.Typer, commands: int = 0, groups: int = 0) -> list[str]:
    """The names of the app's commands and command groups, from the given positions on."""
    from typer.main import get_command_name

    names = [
        c.name or get_command_name(getattr(c.callback, "__name__", ""))
        for c in app.registered_commands[commands:]
    ]
    for g in app.registered_groups[groups:]:
        names.append(g.name or (g.typer_instance.info.name if g.typer_instance else None) or "")
    return names


app = attach(new_app())


def main() -> None:
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
