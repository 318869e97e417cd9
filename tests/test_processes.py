"""The processes of the stack behave: `agentctl server` takes its dev server down with it however
it is stopped, and SIGPIPE never kills a server or worker (only the CLI's own output handles a
reader that went away).

Every process here is the installed `agentctl`, started as an operator or a service manager
starts it, on free ports and a temporary state folder.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents import _ops as ops
from durable_agents.starters.devserver import free_port, port_free
from sim.world import world

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def descendants(pid: int) -> list[int]:
    """Children, their children, and so on."""
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def ignores_sigpipe(pid: int) -> bool:
    """Whether the process ignores SIGPIPE (Python's own setting: a write to a closed socket or
    pipe is an exception the code handles, never a silent death)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGPIPE - 1) & 1)
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)


class Server:
    """`agentctl server` on free ports, its output in a file."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.ui_port = free_port(), free_port()
        self.log = tmp / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [AGENTCTL, "server", "--port", str(self.port), "--ui-port", str(self.ui_port)]
                + ["--state-dir", str(tmp / "state")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.dev_pid = 0

    def started(self, timeout: float = 60) -> int:
        """The dev server's pid, once it listens on its port."""

        def listening() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            return not port_free(self.port)

        wait_until(listening, timeout, "agentctl server did not start its dev server")
        [self.dev_pid] = children(self.proc.pid)
        assert "start-dev" in Path(f"/proc/{self.dev_pid}/cmdline").read_text()
        return self.dev_pid

    def cleanup(self) -> None:
        for pid in (self.proc.pid, self.dev_pid):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.cleanup()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_server_stops_its_dev_server_on(sig: signal.Signals, server: Server) -> None:
    dev = server.started()
    assert alive(dev)
    sigpipe_ignored = ignores_sigpipe(server.proc.pid)

    server.proc.send_signal(sig)
    server.proc.wait(30)

    assert not alive(dev), f"the dev server (pid {dev}) outlived agentctl server ({sig.name})"
    assert port_free(server.port) and port_free(server.ui_port)
    assert server.proc.returncode == 0, server.log.read_text()
    assert f"stopped the Temporal dev server ({sig.name})" in server.log.read_text()
    assert sigpipe_ignored


def test_a_killed_server_takes_its_dev_server_along(server: Server) -> None:
    dev = server.started()

    server.proc.kill()  # SIGKILL: no handler runs; the kernel tells the child (PDEATHSIG)
    server.proc.wait(10)

    wait_until(lambda: not alive(dev), 15, f"the dev server (pid {dev}) did not stop")
    wait_until(lambda: port_free(server.port), 5, f"port {server.port} was not freed")


def test_runs_link_to_the_ui_the_server_was_given(server: Server, tmp_path: Path) -> None:
    """`agentctl server --ui-port N` tells the clients sharing its state folder; a run started
    there links to port N. DURABLE_AGENTS_UI_URL, where set, says otherwise."""
    server.started()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABLE_AGENTS_", "TEMPORAL"))}
    env |= {"DURABLE_AGENTS_STATE_DIR": str(tmp_path / "state"), "DURABLE_AGENTS_TRACING": "off"}
    env |= {k: v for k, v in world("http://127.0.0.1:1").items() if "PROVIDERS" in k}  # its models
    data = json.dumps(
        {"customer_id": "C-1", "email": "kim@example.com", "order_id": "O-1", "amount": "5"}
        | {"ticket_id": "T-1"}
    )

    def started(**more: str) -> str:
        done = subprocess.run(
            [AGENTCTL, "run", "refund", "--as", "tester", "--input", data]
            + ["--address", f"127.0.0.1:{server.port}", "--task-queue", "nobody-polls"],
            env=env | more,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert f"  http://127.0.0.1:{server.ui_port}/namespaces/default/workflows/refund-" in started()
    said = started(DURABLE_AGENTS_UI_URL="https://temporal.example.com")
    assert "  https://temporal.example.com/namespaces/default/workflows/refund-" in said
    # Stopped, the server takes its announcement back.
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(30)
    assert not (tmp_path / "state" / "server.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_kept_demo_takes_its_stack_down_when_stopped(sig: signal.Signals, tmp_path: Path) -> None:
    """`agentctl demo --keep` stopped by a service manager (SIGTERM) or killed: its dev server
    (started by the `agentctl server` it runs) does not stay behind holding its ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABLE_AGENTS_", "TEMPORAL"))}
    env |= {"DURABLE_AGENTS_STATE_DIR": str(tmp_path / "state"), "DURABLE_AGENTS_TRACING": "off"}
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [AGENTCTL, "demo", "--keep"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    dev = 0
    try:
        wait_until(lambda: "stack kept running" in log.read_text(), 180, "the demo did not finish")
        [dev] = [
            c
            for c in descendants(demo.pid)
            if "start-dev" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        port = int(log.read_text().split("Temporal 127.0.0.1:")[1].split(",")[0])
        demo.send_signal(sig)
        demo.wait(60)
        wait_until(lambda: not alive(dev), 15, f"the dev server (pid {dev}) outlived the demo")
        wait_until(lambda: port_free(port), 5, f"port {port} was not freed")
        if sig == signal.SIGTERM:
            assert demo.returncode == 0, log.read_text()[-2000:]
            assert "stopped the demo's stack (SIGTERM)" in log.read_text()
    finally:
        for pid in (demo.pid, dev):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait()


# --- SIGPIPE: servers and workers never die of a closed connection ---------------------------


def poke(port: int, times: int, proc: subprocess.Popen[bytes]) -> None:
    """Clients that are not HTTP, or give up half-way: a gRPC preface, a partial request, a
    garbage line, each closed at once (some with a reset). The server's answers meet closed
    sockets: under SIGPIPE's default action the process would die of it."""
    probes = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 (gRPC) client
        b"garbage\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # partial body
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
    )
    for i in range(times):
        if i % 100 == 0 and proc.poll() is not None:
            return
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(probes[i % len(probes)])
            if i % 3 == 0:  # reset instead of a clean close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_sim_survives_clients_that_are_not_http(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [AGENTCTL, "sim", "--port", str(port)],
        # The same variable the workers read says where the state goes.
        env=os.environ | {"DURABLE_AGENTS_STATE_DIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/healthz"

    def healthy() -> bool:
        assert proc.poll() is None, f"agentctl sim exited {proc.returncode}"
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 30, "the sim did not answer")
        assert (tmp_path / "sim.db").exists()
        assert ignores_sigpipe(proc.pid)
        poke(port, 3000, proc)
        assert proc.poll() is None, f"agentctl sim died (exit {proc.returncode})"
        wait_until(healthy, 15, "the sim did not answer after the pokes")  # a backlog to clear
    finally:
        proc.kill()
        proc.wait()


def test_codec_server_ignores_sigpipe() -> None:
    port = free_port()
    env = os.environ | {
        "DURABLE_AGENTS_CODEC_KEYS": "k1=" + base64.b64encode(os.urandom(32)).decode()
    }
    proc = subprocess.Popen(
        [AGENTCTL, "codec-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: proc.poll() is not None or not port_free(port), 30, "no codec server")
        assert proc.poll() is None, f"agentctl codec-server exited {proc.returncode}"
        assert ignores_sigpipe(proc.pid)
        poke(port, 300, proc)
        assert proc.poll() is None, f"agentctl codec-server died (exit {proc.returncode})"
    finally:
        proc.kill()
        proc.wait()


async def test_worker_ignores_sigpipe(dev_env: WorkflowEnvironment, sim, task_queue: str) -> None:
    env = os.environ | {"TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    proc = subprocess.Popen(
        [AGENTCTL, "worker", "--task-queue", task_queue],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not await ops.pollers(dev_env.client, task_queue):
            assert proc.poll() is None, f"agentctl worker exited {proc.returncode}"
            assert time.monotonic() < deadline, "the worker never polled"
            await asyncio.sleep(0.2)
        assert ignores_sigpipe(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        proc.kill()
        proc.wait()


# --- the CLI's own output: a reader that went away --------------------------------------------


@pytest.mark.parametrize("args", [("--help",), ("list", "--json"), ("approvals", "--help")])
async def test_output_into_a_closed_pipe_is_quiet(
    args: tuple[str, ...], dev_env: WorkflowEnvironment
) -> None:
    """`agentctl list | head -0`: the reader is gone before we write. No traceback, no death by
    signal: exit 1, quietly."""
    read, write = os.pipe()
    os.close(read)
    env = os.environ | {"TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    try:
        proc = await asyncio.create_subprocess_exec(
            AGENTCTL, *args, stdout=write, stderr=asyncio.subprocess.PIPE, env=env
        )
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, (proc.returncode, err.decode())
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
