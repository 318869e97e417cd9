"""`agentctl server | sim | worker | demo | codec-server`: the processes of the default stack.

None of them changes how SIGPIPE is handled: a server or worker that writes to a connection its
peer closed gets an error it handles (a retry, a dropped connection), never a silent death.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from starters.common import call, call_sync, fail

StateDir = Annotated[
    Path,
    typer.Option(
        help="Folder for the SQLite files (git-ignored); the workers read the same variable.",
        envvar="DURABLE_AGENTS_STATE_DIR",
    ),
]
# Signals that stop `agentctl server` (and with it the dev server): a terminal's Ctrl-C or
# hang-up, a service manager's or a script's SIGTERM.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    """A stop signal arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def server(
    port: Annotated[int, typer.Option(help="gRPC port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Web UI port.")] = 8233,
    state_dir: StateDir = Path(".state"),
    codec_endpoint: Annotated[
        str | None,
        typer.Option(help="Codec server the UI decodes payloads with (`agentctl codec-server`)."),
    ] = None,
) -> None:
    """Run the Temporal dev server on 127.0.0.1, persisted in STATE_DIR/temporal.db.

    SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop it; it also stops if this process is killed."""
    from starters.devserver import DevServer, forget

    dev = DevServer(
        db_file=state_dir / "temporal.db",
        port=port,
        ui_port=ui_port,
        ui_codec_endpoint=codec_endpoint,
        die_with_parent=True,  # started from this (main) thread: see DevServer
    )
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)
    announced = state_dir / "server.json"
    try:
        call_sync(lambda: dev.start(60, quiet=False))
        assert dev.proc is not None
        # Clients with the same state folder (DURABLE_AGENTS_STATE_DIR) link to this UI.
        announced = dev.announce(state_dir)
        typer.echo(
            f"Temporal dev server (pid {dev.proc.pid}) on {dev.address}, UI at {dev.ui_url} "
            "(Ctrl-C stops it)"
        )
        code = dev.proc.wait()
    except Stopped as stop:
        _stop(dev)
        typer.echo(f"stopped the Temporal dev server ({stop})", err=True)
        return
    finally:
        _stop(dev)
        forget(announced, dev)
    fail(f"the Temporal dev server exited on its own (code {code}); its log is above")


def _stop(dev: object) -> None:
    """Stop the dev server, not to be cut short by another stop signal."""
    from starters.devserver import DevServer

    assert isinstance(dev, DevServer)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    dev.stop()


def codec_server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8888,
    origin: Annotated[
        list[str] | None,
        typer.Option(help="Browser origin allowed (repeatable); default: the local Temporal UI."),
    ] = None,
    ui_port: Annotated[
        int, typer.Option(help="The local UI's port, for the default origin.")
    ] = 8233,
) -> None:
    """Decode encrypted payloads for the Temporal UI and CLI, for holders of the token.

    Keys: DURABLE_AGENTS_CODEC_KEYS (or _FILE); token: DURABLE_AGENTS_CODEC_TOKEN, or a new one
    printed at start.
    """
    import secrets

    import uvicorn

    from durable_agents._codec import configured_keyring
    from starters.codec_server import create_app

    keyring = call_sync(configured_keyring)
    if keyring is None:
        fail("no keys: set DURABLE_AGENTS_CODEC_KEYS (id=<base64 32 bytes>,…) or _KEYS_FILE")
    token = os.environ.get("DURABLE_AGENTS_CODEC_TOKEN") or secrets.token_urlsafe(24)
    origins = tuple(origin or (f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"))
    url = f"http://127.0.0.1:{port}"
    typer.echo(f"codec server on {url}, keys {', '.join(keyring.ids)} ({keyring.current} encrypts)")
    typer.echo(f"  CLI: --codec-endpoint {url} --codec-auth 'Bearer {token}'")
    typer.echo(f"  UI:  agentctl server --codec-endpoint {url}/t/{token}")
    uvicorn.run(
        create_app(keyring, token, origins), host="127.0.0.1", port=port, log_level="warning"
    )


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
    from sim.app import LOOPBACK, serve

    if host not in LOOPBACK and not container:
        raise typer.BadParameter(
            f"the sim binds loopback only, not {host}; inside a container's own network "
            "namespace add --container",
            param_hint="--host",
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(
        f"sim on http://{host}:{port}; people sign in with `agentctl login` (their passwords: "
        f"{state_dir / 'people.toml'})",
        err=True,
    )
    serve(host=host, port=port, db_path=state_dir / "sim.db", container=container)


def worker(
    task_queue: Annotated[str | None, typer.Option(help="Task queue to poll.")] = None,
    address: Annotated[str | None, typer.Option(help="Temporal address.")] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            help="Also serve the agents of module[:attribute] (repeatable); installed plugins "
            "and DURABLE_AGENTS_PLUGINS are always served."
        ),
    ] = None,
) -> None:
    """Run a worker; SIGTERM or Ctrl-C drains in-flight work, then exits."""
    from durable_agents._discovery import refs
    from workers.client import TASK_QUEUE
    from workers.main import run_worker
    from workers.telemetry import setup_logging

    names = call_sync(lambda: [r for p in plugin or [] for r in refs(p, "--plugin")])
    setup_logging()  # JSON lines by default (DURABLE_AGENTS_LOG_FORMAT=text for plain)
    call(lambda: run_worker(address=address, task_queue=task_queue or TASK_QUEUE, plugins=names))


def demo(
    state_dir: StateDir = Path(".state"),
    keep: Annotated[bool, typer.Option(help="Keep the stack running afterwards.")] = False,
) -> None:
    """Start everything, run the onboarding agent end to end, print the record, stop.

    SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop the whole stack, the dev server with it; so does
    this process being killed."""
    from starters.common import trace
    from starters.demo import dev_server, run_demo, say

    trace()
    dev = dev_server(state_dir)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)
    try:
        say(f"starting the Temporal dev server on {dev.address} (state in {dev.db_file}) …")
        call_sync(lambda: dev.start(60))  # from this (main) thread: see DevServer
        ok = call(lambda: run_demo(dev, state_dir, keep))
    except Stopped as stop:
        _stop(dev)
        typer.echo(f"stopped the demo's stack ({stop})", err=True)
        return
    finally:
        _stop(dev)
    raise typer.Exit(0 if ok else 1)
