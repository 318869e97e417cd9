"""Run the sim in a background thread: for tests, benchmarks and the CLI's embedded mode.

The socket is bound here, before uvicorn starts, so port 0 yields a real free port with no race
between choosing it and listening on it.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn
from fastapi import FastAPI

from sim.app import create_app
from sim.db import Database
from sim.idp import CREDENTIALS_FILE


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (prefer SimServer(port=0), which cannot race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SimServer:
    """The sim app served by uvicorn on a background thread; `.url` once started."""

    def __init__(self, db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._db: Database | None = None
        # The agents' credentials at the sim's identity provider (what workers read).
        self.credentials = self.db_path.parent / CREDENTIALS_FILE
        self.app: FastAPI | None = None

    def start(self, timeout: float = 10.0) -> SimServer:
        """Start serving and return once /healthz answers."""
        if self._server is not None:
            raise RuntimeError("SimServer already started")
        app = create_app(self.db_path, self.credentials)
        self._db, self.app = app.state.db, app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: without it Nagle + delayed ACK add ~40 ms a reply.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            # The lifespan runs the MCP server's session manager (sim.mcp_server).
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sim-server", daemon=True
        )
        self._thread.start()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("sim server thread exited during startup")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"sim server at {self.url} did not answer within {timeout}s")

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread, close the database."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._db is not None:
            self._db.close()
        self._server, self._thread, self._db = None, None, None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
