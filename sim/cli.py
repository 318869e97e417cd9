"""`agentctl sim` and `agentctl demo`: the sim world's commands.

They reach agentctl the way any plugin's commands do: the entry point `sim` of the group
`durable_agents.commands` (sim/pyproject.toml) names `attach`, which agentctl calls with its
`typer.Typer`. Only typer is imported here: `agentctl --help` loads this module, so what a
command needs is imported inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StateDir = Annotated[
    Path,
    typer.Option(
        help="Folder for the SQLite files (git-ignored); the workers read the same variable.",
        envvar="DURABLE_AGENTS_STATE_DIR",
    ),
]


def attach(app: typer.Typer) -> None:
    """Add the sim world's commands to agentctl."""
    app.command("sim")(sim)
    app.command("demo")(demo)


def sim(
    host: Annotated[
        str, typer.Option(help="Bind address (keep 127.0.0.1 outside containers).")
    ] = "127.0.0.1",
    port: int = 8787,
    state_dir: StateDir = Path(".state"),
    container: Annotated[
        bool,
        typer.Option(
            help="Allow a --host beyond loopback: only inside a container's own network "
            "namespace (docker-compose), published to the host on 127.0.0.1."
        ),
    ] = False,
) -> None:
    """Run the sim world: the scripted model server, the company systems and the identity
    provider, on SQLite. The agents' credentials go to STATE_DIR/credentials.toml, the people's
    passwords (for `agentctl login`) to STATE_DIR/people.toml, the provider's admin credential
    to STATE_DIR/idp-admin.secret (each readable by its owner only)."""
    from sim.app import LOOPBACK

    if host not in LOOPBACK and not container:
        raise typer.BadParameter(
            f"the sim binds loopback only, not {host}; inside a container's own network "
            "namespace add --container",
            param_hint="--host",
        )
    import shlex

    from sim.app import serve
    from sim.idp import CREDENTIALS_FILE
    from sim.people import PEOPLE_FILE
    from sim.world import world

    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    typer.echo(
        f"sim on {url}; people sign in with `agentctl login` (their passwords: "
        f"{state_dir / PEOPLE_FILE})",
        err=True,
    )
    if host in LOOPBACK:  # in a container, the compose file says how others reach it
        typer.echo("workers and agentctl reach this world with these settings:", err=True)
        for name, value in world(url, (state_dir / CREDENTIALS_FILE).resolve()).items():
            typer.echo(f"  export {name}={shlex.quote(value)}", err=True)
    serve(host=host, port=port, db_path=state_dir / "sim.db", container=container)


def demo(
    state_dir: StateDir = Path(".state"),
    keep: Annotated[bool, typer.Option(help="Keep the stack running afterwards.")] = False,
) -> None:
    """Start everything, run the onboarding agent end to end, print the record, stop.

    It runs agentctl's own commands (server, worker, login, run, approvals, approve, …) and
    prints each. SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop the whole stack, the dev server with
    it; so does this process being killed."""
    from sim.demo import main

    raise typer.Exit(main(state_dir, keep))
