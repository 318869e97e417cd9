"""How long a killed worker's work waits: SIGKILL a worker, time until its work goes on elsewhere.

    python -m bench.recovery [--kills 3]

Three worker processes of the `lazarus` agent (below) on one task queue of an in-memory Temporal
dev server. For each of `--kills` runs:
- a model call (the scripted model holds, heartbeating, while a file exists): SIGKILL the worker
  running it; `llm_recovery_s` is the time until the call runs again on another worker;
- a tool call (the same, in `run_tool`): `activity_recovery_s`, the same way;
- then the run waits for an event: SIGKILL the worker that ran its last workflow task (it holds
  the run in its cache, and the server sends the run's next task to that worker's sticky queue
  first) and send the event at once; `task_recovery_s` is the time from the kill to the next
  workflow task completed (another worker took it).
A killed worker is started again before the next kill (three workers throughout).

Progress goes to stderr; the last line on stdout is one JSON object with the medians
(`activity_recovery_s`, `llm_recovery_s`, `task_recovery_s`), their maxima (`_max`), the
individual figures, and the settings that bound them: the heartbeat timeouts of tool and model
calls and the workers' sticky-queue timeout. Target (issue 15): <= 15 s. Figures, never
pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench._serve import exit_after, until_sigterm
from durable_agents import WAIT_FOR_EVENT, AgentSet, AgentSpec, Directory, ToolContext, tool
from durable_agents._vocab import names
from durable_agents._vocab.schemas import AgentResult, AgentRun, EventSignal
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.testing import Message, Reply, ScriptedModel, call, results
from durable_agents.workers.client import connect


def here() -> Path:
    """Where attempts are logged and holds are files (RECOVERY_DIR, set by the bench)."""
    return Path(os.environ["RECOVERY_DIR"])


TOOL_TIMEOUT = timedelta(seconds=60)  # the heartbeat timeout is min(timeout, 10 s)


class Nothing(BaseModel):
    pass


class Hold(BaseModel):
    n: int


class Held(BaseModel):
    n: int
    pid: int


def mark(what: str, workflow_id: str, attempt: int) -> None:
    """One line per attempt: what, run, attempt, this worker's pid, when."""
    with (here() / "attempts.log").open("a") as f:
        f.write(json.dumps([what, workflow_id, attempt, os.getpid(), time.time()]) + "\n")


async def held(what: str, beat: Any) -> None:
    """Hold while RECOVERY_DIR/<what> exists, heartbeating (a model call heartbeats itself)."""
    while (here() / what).exists():
        if beat is not None:
            beat()
        await asyncio.sleep(0.2)


@tool(side_effect="read_only", timeout=TOOL_TIMEOUT)
async def hold(args: Hold, ctx: ToolContext) -> Held:
    """Hold until released."""
    from temporalio import activity

    info = activity.info()
    mark("tool", info.workflow_id or "", info.attempt)
    await held("tool", ctx.heartbeat)
    return Held(n=args.n, pid=os.getpid())


async def script(messages: list[Message]) -> Reply:
    if not results(messages, "hold"):
        from temporalio import activity

        info = activity.info()
        mark("llm", info.workflow_id or "", info.attempt)
        await held("llm", None)
        return call("hold", n=1)
    if not results(messages, "wait_for_event"):
        return call("wait_for_event", events=["go"], timeout_hours=1)
    return "back"


LAZARUS = AgentSpec(
    name="lazarus",
    version="1.0.0",
    description="A model call and a tool call that hold while told to, then a wait for `go`.",
    system_prompt="Hold, then wait for go.",
    model_route=("scripted:lazarus",),
    tools=(hold, WAIT_FOR_EVENT),
    input_model=Nothing,
    llm_attempts=10,
)
# Runs the bench starts are code's: they act for a service principal, with no proof.
PEOPLE = Directory(services=frozenset({"tester"}), groups={"operators": frozenset({"olga"})})
AGENTS = AgentSet((LAZARUS,), directory=PEOPLE)
MODELS = [ScriptedModel("lazarus", script)]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def serve(task_queue: str) -> None:
    from durable_agents.workers.main import build_worker

    client = await connect(os.environ["TEMPORAL_ADDRESS"], wait_seconds=30)
    await until_sigterm(build_worker(client, task_queue, agents=[AGENTS], models=MODELS))


class Workers:
    """Three worker processes; a killed one is replaced."""

    def __init__(self, queue: str, env: dict[str, str], n: int = 3) -> None:
        self.queue, self.env = queue, env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for _ in range(n):
            self.spawn()

    def spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.recovery", "--worker", self.queue],
            env=self.env,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None
        if b"worker ready" not in proc.stdout.readline():
            proc.kill()
            raise RuntimeError("a worker did not start")
        self.procs[proc.pid] = proc

    def kill(self, pid: int) -> float:
        proc = self.procs.pop(pid)
        at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return at

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def attempts(what: str, workflow_id: str) -> list[list[Any]]:
    log = here() / "attempts.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [r for r in map(json.loads, lines) if r[0] == what and r[1] == workflow_id]


async def wait_for_attempt(what: str, workflow_id: str, n: int, timeout: float = 120) -> list[Any]:
    started = time.monotonic()
    while len(found := attempts(what, workflow_id)) < n:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no attempt {n} of {what} for {workflow_id} in {timeout:.0f} s")
        await asyncio.sleep(0.05)
    return found[n - 1]


async def activity_kill(workers: Workers, what: str, workflow_id: str) -> float:
    """Kill the worker running the held `what` (held since the run started); seconds until
    it runs again elsewhere."""
    first = await wait_for_attempt(what, workflow_id, 1)
    killed = workers.kill(first[3])
    again = await wait_for_attempt(what, workflow_id, 2)
    (here() / what).unlink()
    workers.spawn()
    return float(again[4] - killed)


def last_task_worker(events: list[Any]) -> int:
    for e in reversed(events):
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return int(e.workflow_task_completed_event_attributes.identity.split("@")[0])
    raise RuntimeError("no workflow task completed")


async def task_kill(client: Client, workers: Workers, handle: WorkflowHandle[Any, Any]) -> float:
    """Kill the worker holding the waiting run; seconds until the run's next workflow task
    completes on another worker, after an event sent at once."""
    while True:
        history = await handle.fetch_history()
        if any(
            e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events
        ):  # the wait's timer: the run waits
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    killed = workers.kill(last_task_worker(list(history.events)))
    await handle.signal(names.EVENT_SIGNAL, EventSignal(name="go"))
    seen = len(history.events)
    while True:
        events = list((await handle.fetch_history()).events)
        for e in events[seen:]:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                workers.spawn()
                return e.event_time.ToDatetime().timestamp() + _utc_offset() - killed
        await asyncio.sleep(0.1)


def _utc_offset() -> float:
    """`ToDatetime()` is naive UTC; `timestamp()` reads it as local time."""
    return -time.timezone if time.localtime().tm_isdst == 0 else -time.altzone


async def benchmark(kills: int, tmp: Path) -> dict[str, Any]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    say(f"starting the Temporal dev server on {server.address} (in memory)")
    server.start()
    workers: Workers | None = None
    figures: dict[str, list[float]] = {"llm": [], "tool": [], "task": []}
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"bench-recovery-{uuid.uuid4().hex[:8]}"
        os.environ["RECOVERY_DIR"] = str(tmp)
        env = dict(os.environ, TEMPORAL_ADDRESS=server.address)
        env["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{tmp / 'store.sqlite3'}"
        env["DURABLE_AGENTS_STATE_DIR"] = str(tmp / "state")
        workers = Workers(queue, env)
        for i in range(kills):
            for what in ("llm", "tool"):
                (tmp / what).touch()  # both hold until their kill is done
            handle = await client.start_workflow(
                names.WORKFLOW,
                AgentRun(agent="lazarus", principal="tester"),
                id=f"lazarus-{i}-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
                result_type=AgentResult,
            )
            figures["llm"].append(await activity_kill(workers, "llm", handle.id))
            figures["tool"].append(await activity_kill(workers, "tool", handle.id))
            figures["task"].append(await task_kill(client, workers, handle))
            result = await asyncio.wait_for(handle.result(), 120)
            say(
                f"kill {i + 1}: model call again after {figures['llm'][-1]:.1f} s, tool call "
                f"after {figures['tool'][-1]:.1f} s, workflow task after "
                f"{figures['task'][-1]:.1f} s ({result.outcome})"
            )
    finally:
        if workers is not None:
            workers.stop()
        server.stop()
    row: dict[str, Any] = {"kills": kills, "workers": 3}
    for key, what in (("llm_recovery_s", "llm"), ("activity_recovery_s", "tool")):
        row[key] = round(statistics.median(figures[what]), 1)
        row[f"{key}_max"] = round(max(figures[what]), 1)
    row["task_recovery_s"] = round(statistics.median(figures["task"]), 1)
    row["task_recovery_s_max"] = round(max(figures["task"]), 1)
    row["all_s"] = {k: [round(v, 1) for v in vs] for k, vs in figures.items()}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recovery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kills", type=int, default=3, help="runs, each killed three times")
    parser.add_argument("--worker", metavar="TASK_QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        exit_after(serve(args.worker))
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        row = asyncio.run(benchmark(args.kills, Path(tmp)))
    print(json.dumps(row, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
