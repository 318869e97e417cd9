"""A real PostgreSQL server for tests: initdb'd in a temporary folder, on a free loopback port,
stopped by its pid at the end. It uses Debian's `postgresql` package (`.ci/run` installs it when
missing; locally: `apt-get install postgresql`). PostgreSQL refuses to run as root, so as root
it runs as the package's `postgres` user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from durable_agents.starters.devserver import free_port


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"no {name}: install PostgreSQL (apt-get install postgresql)")
    return found


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres() -> Iterator[str]:
    """A running server; yields its URL (database `postgres`, user `postgres`, trust auth).
    Its files live in a folder of their own under the system's temporary directory (the
    server's user must reach them: pytest's folders are the test runner's alone)."""
    root = Path(tempfile.mkdtemp(prefix="durable-agents-pg-"))
    data, sockets = root / "pgdata", root / "pgsock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    initdb = [binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_owner(initdb), check=True, capture_output=True)
    server = subprocess.Popen(
        _as_owner([binary("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                   "-k", str(sockets)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)
