"""`agentctl demo`: the whole embedded stack, one onboarding run with a days-long wait and an
approval, the record, then tear-down, driven the way a person at a terminal drives it.

The demo runs agentctl's own commands as processes and prints each one: `agentctl server` (the
Temporal dev server), `agentctl worker`, `agentctl login` (the people it plays sign in on the
sim's pages, as a browser would), `agentctl run`, `agentctl approvals`, `agentctl approve`,
`agentctl transcript`, `agentctl result` and `agentctl audit`. What it waits for it reads with
the public client (`durable_agents.client`). The sim world runs in this process.

Every process it starts dies with it. Stopped by SIGTERM, SIGINT or SIGHUP, it stops them in
order (the worker drains, `agentctl server` takes its dev server down); killed, they get SIGTERM
from the kernel (Linux's parent-death signal, armed from the main thread that starts them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import typer

LEDGER_ACTIONS = ("create_mailbox", "order_laptop", "send_email")
TERMINAL = ("completed", "rejected", "aborted", "timed_out", "budget_exhausted", "failed")
SCOPES = ("hr:write", "it:write", "mail:send")
# Signals that stop the demo and its stack: a terminal's Ctrl-C or hang-up, a service manager's
# or a script's SIGTERM.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
HOST = "127.0.0.1"


class Stopped(Exception):
    """A stop signal arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


class DemoFailed(Exception):
    """A step of the demo did not do what it should; the message says which and why."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def say(text: str = "", bold: bool = False) -> None:
    typer.secho(text, bold=bold)


def shown(args: tuple[str, ...] | list[str]) -> str:
    """A command as one would type it."""
    return shlex.join(["agentctl", *args])


def new_hire() -> dict[str, str]:
    return {
        "employee_id": f"E{uuid.uuid4().hex[:6].upper()}",
        "full_name": "Ada Lovelace",
        "personal_email": "ada@lovelace.example",
        "start_date": (date.today() + timedelta(days=14)).isoformat(),
        "ship_to": "12 St James's Square, London",
    }


def free_port(preferred: int) -> int:
    """`preferred` if it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise DemoFailed("no free port on 127.0.0.1")


def agentctl_path() -> str:
    """The `agentctl` installed beside this Python (else on PATH)."""
    local = Path(sys.executable).parent / "agentctl"
    found = str(local) if local.exists() else shutil.which("agentctl")
    if not found:
        raise DemoFailed("agentctl not found: install durable-agents (`make install`)")
    return found


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child get SIGTERM when this process dies, even of SIGKILL
    (Linux's PR_SET_PDEATHSIG; it fires when the *thread* that started the child ends, so every
    child is started from the main thread), and exit at once if this process is already gone."""
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


class Stack:
    """The processes the demo started, and the sim; `stop` takes them down, newest first."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.agentctl = agentctl_path()
        self.services: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.commands: set[asyncio.subprocess.Process] = set()
        self.sim: Any = None
        self._preexec = die_with_parent()
        self._logs: list[IO[bytes]] = []

    def service(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Path:
        """Start `agentctl ARGS`, a long-running process, its output in STATE_DIR/demo-NAME.log."""
        log = self.state_dir / f"demo-{name}.log"
        out = log.open("wb")
        self._logs.append(out)
        # Its own session: a Ctrl-C at the terminal reaches the demo, which stops it in order.
        proc = subprocess.Popen(
            [self.agentctl, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        self.services.append((name, proc, log))
        return log

    async def ready(self, name: str, marker: str, timeout: float = 60) -> str:
        """Wait until the service says `marker`; the line that says it."""
        [(proc, log)] = [(p, log) for n, p, log in self.services if n == name]
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            text = log.read_text(errors="replace")
            for line in text.splitlines():
                if marker in line:
                    return line
            if proc.poll() is not None:
                last = text.strip().splitlines()[-1:] or ["(no output)"]
                raise DemoFailed(
                    f"`agentctl {name}` exited with code {proc.returncode}: {last[0][:300]} "
                    f"(its log: {log})"
                )
            await asyncio.sleep(0.05)
        raise DemoFailed(f"`agentctl {name}` was not ready within {timeout:g} s (its log: {log})")

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            self.agentctl,
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        self.commands.add(proc)
        return proc

    async def run(self, *args: str, timeout: float = 60) -> tuple[str, str]:
        """`agentctl ARGS` to its end: (stdout, stderr); a failure is a `DemoFailed` with its
        own one line."""
        proc = await self.start(*args)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            raise DemoFailed(f"`{shown(args)}` did not finish within {timeout:g} s") from None
        finally:
            self.commands.discard(proc)
        if proc.returncode != 0:
            raise DemoFailed(f"`{shown(args)}` exited with code {proc.returncode}: {last(err)}")
        return out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self) -> None:
        """Stop everything, not to be cut short by another stop signal: commands at once, then
        the services newest first (SIGTERM: the worker drains, the server stops its dev
        server), then the sim."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        for command in list(self.commands):
            if command.returncode is None:
                with contextlib.suppress(ProcessLookupError, RuntimeError):  # gone, loop closed
                    command.kill()
        self.commands.clear()
        while self.services:
            _, proc, _ = self.services.pop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            if not self.services:
                self._stop_sim()  # while the server stops: nothing calls the sim any more
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._stop_sim()
        while self._logs:
            self._logs.pop().close()

    def _stop_sim(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


def last(err: bytes | str) -> str:
    """The last line that says something (a usage error comes in a box)."""
    text = err.decode(errors="replace") if isinstance(err, bytes) else err
    lines = [line.strip(" │╭╮╰╯─") for line in text.splitlines()]
    said = [line for line in lines if any(c.isalnum() for c in line)]
    return said[-1][:400] if said else "(nothing on stderr)"


def echo_lines(text: str, indent: str = "", err: bool = False, gap: bool = False) -> None:
    """A command's output as it printed it (`indent` before each line); `gap`: a blank line
    after it."""
    for line in text.rstrip("\n").splitlines():
        typer.echo(indent + line, err=err)
    if gap:
        typer.echo("", err=err)


def main(state_dir: Path, keep: bool) -> int:
    """The demo, start to finish: 0 if everything did what it should."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)
    stack: Stack | None = None
    try:
        stack = Stack(state_dir)
        asyncio.run(run_demo(stack, keep))
    except Stopped as stop:
        if stack is not None:
            stack.stop()
        typer.echo(f"stopped the demo's stack ({stop})", err=True)
        return 0
    except DemoFailed as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 1
    except Exception as exc:
        from durable_agents.errors import DurableAgentsError

        if not isinstance(exc, DurableAgentsError):
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 1
    finally:
        if stack is not None:
            stack.stop()
    return 0


async def wait_until(handle: Any, status: str, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        s = await handle.status()
        if s.status == status:
            return s
        if s.status in TERMINAL or s.status == "needs_attention":
            raise DemoFailed(f"run {handle.id} ended early ({s.status}): {s.last_error}")
        await asyncio.sleep(0.1)
    raise DemoFailed(f"run {handle.id} did not reach {status} within {timeout:g} s")


async def sign_in(stack: Stack, base: str, person: str) -> tuple[str, str]:
    """`agentctl login` as `person`, who signs in on the sim's pages as a browser would: the
    subject agentctl says it signed in as, and what it printed on the way."""
    from sim.person import approve_device, password

    secret = password(stack.state_dir, person)
    proc = await stack.start("login")
    browser: asyncio.Future[Any] | None = None
    subject, printed = "", []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            signed = re.match(r"signed in as (\S+) at ", line)
            if signed:
                subject = signed.group(1)
                continue
            printed.append(f"  {line}")
            code = re.search(r"code ([A-Z]+)", line)
            if code is not None and browser is None:
                args = (base, code.group(1), person, secret)
                browser = asyncio.ensure_future(asyncio.to_thread(approve_device, *args))
        err = await proc.stderr.read()
        await proc.wait()
    finally:
        stack.commands.discard(proc)
    if browser is not None:
        page = await browser
        if page.status_code != 200:
            raise DemoFailed(
                f"{person} could not sign in: HTTP {page.status_code} {page.text[:200]}"
            )
    if proc.returncode != 0 or not subject:
        raise DemoFailed(f"`agentctl login` as {person} exited {proc.returncode}: {last(err)}")
    return subject, "\n".join(printed)


def child_env(state_dir: Path, sim_url: str, credentials: Path, address: str) -> dict[str, str]:
    """What the demo and every command it runs agree on: this Temporal server; the sim world
    (its models, its identity provider, the agents' credentials it wrote: `sim.world`); a
    sign-in file of the demo's own."""
    from sim.world import world

    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    return (
        env
        | world(sim_url, credentials)
        | {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "default",
            "DURABLE_AGENTS_STATE_DIR": str(state_dir),
            # The people the demo plays sign in here (a file of the demo's own, not yours).
            "DURABLE_AGENTS_SIGNIN_FILE": str(state_dir / "demo-signin.json"),
        }
    )


async def run_demo(stack: Stack, keep: bool) -> None:
    from sim.runner import SimServer

    state_dir = stack.state_dir
    port, ui_port = free_port(7233), free_port(8233)
    address, ui_url = f"{HOST}:{port}", f"http://{HOST}:{ui_port}"
    server = ["server", "--port", str(port), "--ui-port", str(ui_port)]
    server += ["--state-dir", str(state_dir)]
    say(
        f"starting the Temporal dev server on {address} (state in {state_dir / 'temporal.db'}): "
        f"{shown(server)} …"
    )
    stack.service("server", server)

    sim = SimServer(state_dir / "sim.db", port=free_port(8787))
    await asyncio.to_thread(sim.start)
    stack.sim = sim
    say(f"sim world (model server + HR/IT/mail + identity provider) on {sim.url}")
    # This process (its client) and every command it runs from here on.
    for name in [name for name in os.environ if name.startswith("TEMPORAL_")]:
        del os.environ[name]
    os.environ.update(child_env(state_dir, sim.url, sim.credentials, address))
    # The worker's own output goes to its log; no spans or metrics port for a demo.
    quiet = {"DURABLE_AGENTS_TRACING": "off", "DURABLE_AGENTS_METRICS_ADDRESS": "off"}
    worker_log = stack.service(
        "worker", ["worker"], env={"DURABLE_AGENTS_LOG_FORMAT": "text"} | quiet | dict(os.environ)
    )
    say(f"starting a worker: agentctl worker (its log: {worker_log})\n")

    say("hr-demo, of HR, signs in to start the onboarding: agentctl login", bold=True)
    starter, printed = await sign_in(stack, sim.url, "hr-demo")
    echo_lines(printed)
    say(f"signed in as {starter}, as the identity provider proves it\n")

    await stack.ready("server", "Temporal dev server (pid")
    polling = await stack.ready("worker", "worker polling task queue")
    queue = re.search(r"task queue '([^']+)'", polling)
    say(f"worker polling task queue {queue.group(1) if queue else '?'!r} on {address}\n")

    from durable_agents.client import AgentClient, new_run_id

    hire, run_id = new_hire(), new_run_id("onboarding")
    run = ["run", "onboarding", "--input", json.dumps(hire)]
    run += [a for scope in SCOPES for a in ("--scope", scope)] + ["--id", run_id]
    say(f"{starter} starts it: {shown(run)}")
    agents, (_, err) = await asyncio.gather(AgentClient.connect(address), stack.run(*run))
    links = [line.strip() for line in err.splitlines() if f"/workflows/{run_id}" in line]
    echo_lines("\n".join(line for line in err.splitlines() if line.strip() not in links), err=True)
    handle = agents.run(run_id)
    # hana, who will decide, signs in while the run goes on (told when she reads her inbox).
    hana_signs_in = asyncio.ensure_future(sign_in(stack, sim.url, "hana"))
    status = await handle.status()
    say(
        f"the run acts for {status.principal}, proven by the start proof; {starter} granted "
        f"onboarding {' '.join(SCOPES)} by starting it (`agentctl grants`)"
    )
    say(f"run id: {run_id}", bold=True)
    say(f"Temporal UI: {links[0] if links else ui_url}\n")

    waiting = await wait_until(handle, "waiting_event")
    say(
        f"the agent now waits for {waiting.waiting_for}: no process holds it, it could wait "
        "days.\nsending `clearance_granted` as the security team would …\n"
    )
    await handle.send_event(
        "clearance_granted", {"granted_by": "security-team", "level": "standard"}
    )
    await wait_until(handle, "waiting_approval")
    [asked] = await handle.approvals(pending=True)
    show = ("approvals", "show", run_id, asked.id)
    # The inbox, the request in full and hana's sign-in, side by side; told in order.
    (inbox, err), (request, _), (hana, printed) = await asyncio.gather(
        stack.run("approvals"), stack.run(*show), hana_signs_in
    )
    say("the welcome email is external, so it waits for HR. `agentctl approvals` shows:", bold=True)
    echo_lines(inbox, gap=True)
    echo_lines(err, err=True)
    say(f"what hana reads first: {shown(show)}")
    echo_lines(request, gap=True)
    say("hana (hr-managers) signs in: agentctl login", bold=True)
    echo_lines(printed)
    say(f"signed in as {hana}, as the identity provider proves it\n")
    approve = ["approve", run_id, asked.id, "--as", hana, "--digest", asked.digest]
    approve += ["--reason", "warm and accurate"]
    say(f"{hana} approves: {shown(approve)}")
    out, _ = await stack.run(*approve)
    echo_lines(out)
    [decided] = [a for a in await handle.approvals() if a.id == asked.id]
    say(f"  (proof {decided.proof_id} from {decided.proof_issuer}, checked by the worker)\n")

    # The record, read as an operator would (the commands side by side), and what the systems
    # recorded for this run, and who they say did it: each learned that from the token it
    # checked, not from the agent.
    async def record() -> tuple[Any, ...]:
        outcome = await asyncio.wait_for(handle.result(), timeout=120)
        return outcome, *await asyncio.gather(
            stack.run("transcript", run_id),
            stack.run("audit", run_id, "--json"),
            stack.run("audit", run_id, "--verify"),
            asyncio.to_thread(ledger, sim.url, run_id),
        )

    (
        (outcome, (transcript, _), (trail_json, _), (verified, _), made),
        (result, _),
    ) = await asyncio.gather(record(), stack.run("result", run_id, "--wait", timeout=150))
    say("transcript", bold=True)
    echo_lines(transcript, gap=True)
    say("outcome", bold=True)
    echo_lines(result, gap=True)
    counts = {a: sum(1 for e in made if e["action"] == a) for a in LEDGER_ACTIONS}
    say("sim ledger for this run: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for e in made:
        say(
            f"  {e['action']}: agent {e['agent']} for {e['principal']}, scope {e['scope']}, "
            f"token {e['token_id']}"
        )
    trail = [r["entry"] for r in json.loads(trail_json)]
    said = ", ".join(
        " ".join(filter(None, (e.get("tool"), e.get("outcome"))))
        + (f" by {e['approver']}" if e.get("approver") else "")
        for e in trail
    )
    say(f"audit log: {said} (`agentctl audit {run_id}`); `agentctl audit {run_id} --verify`:")
    echo_lines(verified, indent="  ")
    effects = [e for e in trail if e.get("kind") == "side_effect"]
    wrong = [
        what
        for what, holds in (
            (f"the run ended {outcome.outcome}", outcome.outcome == "completed"),
            (f"the decision is {decided.decided_by}'s", decided.decided_by == hana == "hana"),
            ("the decision carries no proof", bool(decided.proof_id)),
            (f"the systems recorded {counts}", all(v == 1 for v in counts.values())),
            (
                "the systems name another agent or principal",
                all((e["agent"], e["principal"]) == ("onboarding", starter) for e in made),
            ),
            (f"the audit log holds {len(effects)} side effects, not 3", len(effects) == 3),
        )
        if not holds
    ]
    if wrong:
        raise DemoFailed("; ".join(wrong))
    if keep:
        say(
            f"\nstack kept running: UI {ui_url}, Temporal {address}, sim {sim.url}. "
            "Ctrl-C stops it."
        )
        await asyncio.Event().wait()


def ledger(base: str, run_id: str) -> list[dict[str, Any]]:
    """What the sim's systems recorded for the run (one read)."""
    import httpx

    entries = httpx.get(f"{base}/ledger", params={"run": run_id}, timeout=10).json()["entries"]
    return list(entries)
