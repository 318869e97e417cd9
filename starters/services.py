"""`agentctl server | worker | codec-server`: the processes of the default stack.

None of them changes how SIGPIPE is handled: a server or worker that writes to a connection its
peer closed gets an error it handles (a retry, a dropped connection), never a silent death.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from durable_agents.starters.common import call, call_sync, fail

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
    from durable_agents.starters.devserver import DevServer, forget

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
    from durable_agents.starters.devserver import DevServer

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
    from durable_agents.settings import current
    from durable_agents.starters.codec_server import create_app

    keyring = call_sync(configured_keyring)
    if keyring is None:
        fail("no keys: set DURABLE_AGENTS_CODEC_KEYS (id=<base64 32 bytes>,…) or _KEYS_FILE")
    named = current().codec_token
    token = named.get_secret_value() if named else secrets.token_urlsafe(24)
    origins = tuple(origin or (f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"))
    url = f"http://127.0.0.1:{port}"
    typer.echo(f"codec server on {url}, keys {', '.join(keyring.ids)} ({keyring.current} encrypts)")
    typer.echo(f"  CLI: --codec-endpoint {url} --codec-auth 'Bearer {token}'")
    typer.echo(f"  UI:  agentctl server --codec-endpoint {url}/t/{token}")
    uvicorn.run(
        create_app(keyring, token, origins), host="127.0.0.1", port=port, log_level="warning"
    )


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
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Do not serve: prove this build can take over (replay the open runs and a "
            "sample of closed ones with its code, read the open runs' state with its models), "
            "record the result on its deployment version, print it, exit 0 if it passed.",
        ),
    ] = False,
) -> None:
    """Run a worker; SIGTERM or Ctrl-C drains in-flight work, then exits.

    With --check, the build checks it can take over before `agentctl deploy ramp` or `promote`
    give it traffic (they refuse a version whose check has not passed)."""
    from durable_agents._discovery import refs
    from durable_agents.settings import Settings
    from durable_agents.workers.main import run_worker
    from durable_agents.workers.telemetry import setup_logging

    # Read once, here: a variable that does not parse stops the worker in one line.
    settings = call_sync(Settings.from_env)
    names = call_sync(lambda: [r for p in plugin or [] for r in refs(p, "--plugin")])
    setup_logging(settings=settings)  # JSON lines by default (DURABLE_AGENTS_LOG_FORMAT=text)
    if check:
        from durable_agents.workers.main import check_worker

        report = call(
            lambda: check_worker(
                address=address, task_queue=task_queue, plugins=names, settings=settings
            )
        )
        typer.echo(report.text())
        raise typer.Exit(0 if report.passed else 1)
    call(
        lambda: run_worker(address=address, task_queue=task_queue, plugins=names, settings=settings)
    )


def console(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8790,
    address: Annotated[str | None, typer.Option(help="Temporal address.")] = None,
) -> None:
    """Run the approvers' web console on http://127.0.0.1:PORT: sign in at the identity provider
    (DURABLE_AGENTS_OIDC_URL), see what waits for your decision, read it whole, approve or
    reject with your proof, and watch runs live. Loopback only: put a TLS proxy in front."""
    from durable_agents.client import AgentClient
    from durable_agents.settings import Settings
    from durable_agents.starters.console import serve

    settings = call_sync(Settings.from_env)
    if settings.identity_provider is None:
        fail("the console signs people in: set DURABLE_AGENTS_OIDC_URL to the OpenID provider")

    async def go() -> None:
        agents = await AgentClient.connect(address)
        typer.echo(f"console on http://127.0.0.1:{port} (Ctrl-C stops it)")
        await serve(agents, settings, "127.0.0.1", port)

    call(go)
