"""What waiting costs: M runs parked on an event, then a burst of M events.

    python -m bench.hibernation [--m 2000] [--10k] [--max-cached N] [--only ours|baseline]
                                [--baseline bare|status] [--rounds R]

For each of two workloads, on its own Temporal dev server (a SQLite file) with its worker in
its own process:
- ours: M runs of the `sleeper` agent (bench/sleeper.py): one model turn (a scripted model, in
  the worker), then `wait_for_event`; the event's turn answers and the run completes;
- baseline: M runs of a bare workflow (bench/wake_baseline.py): one activity, a wait for a
  signal, one more activity; with `--baseline status`, the same workflow setting `AgentStatus`
  at every change and giving its wait a deadline, as an agent run does (what that costs).
All M are started and left until every one waits (visibility says so); then the worker's and the
server's resident memory is read (the process and its children, from /proc via psutil); then M
events are sent at once (100 in flight) and the bench waits until all M completed.

Progress goes to stderr; the last line on stdout is one JSON object:
- `m`; `worker_rss_mb`, `server_rss_mb`: resident memory while all M wait;
  `worker_kb_per_run`, `server_kb_per_run`: what each waiting run added to it (over the idle
  process, before the first run started);
- `wake_per_s`: completions per second, from the first event sent to the last completion;
- `wake_p50_ms`, `wake_p99_ms`: from a run's event (accepted by the server) to its completion
  (its close time);
- `worker_cpu_ms_per_wake`, `server_cpu_ms_per_wake`: CPU time (user + system) the worker and
  the server used from the first event sent until the last run completed, per run: on a small
  machine the two share the cores, so either one's appetite slows every wake-up;
- the same with `baseline_` in front; `wake_ratio`: ours / baseline's throughput;
- `baseline`: which baseline (bare, status);
- `rounds`: with `--rounds R`, each workload runs R times, alternately (ours, baseline, ours,
  ...; the machine's speed drifts over minutes); every figure is then the median of its
  rounds, and `wake_ratio` the median of the rounds' ratios (each in `wake_ratios`);
- `max_cached_workflows`: the workers' setting (`DURABLE_AGENTS_MAX_CACHED_WORKFLOWS`; null: the
  SDK's default, 1,000).
Targets (issue 15): worker RSS <= 150 MB while 10,000 wait; throughput >= 0.9 x baseline's.
Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client, WorkflowHandle

from bench.sleeper import EVENT, start
from bench.wake_baseline import PARKED_LOG, SIGNAL
from durable_agents._vocab import names
from durable_agents._vocab.schemas import EventSignal
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.workers.client import connect
from durable_agents.workers.main import MAX_CACHED_WORKFLOWS

IN_FLIGHT = 100  # starts and signals in flight at once


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _tree_sum(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """`measure` summed over a process and its children (one that just ended counts 0)."""
    proc = psutil.Process(pid)
    total = 0.0
    for one in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += measure(one)
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    return _tree_sum(pid, lambda p: p.memory_info().rss) / 1e6


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its children have used so far."""
    return _tree_sum(pid, lambda p: sum(p.cpu_times()[:2]))  # user, system


async def bounded(n: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """`make(i)` for i < n, at most IN_FLIGHT at once, in order."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def parked_baseline(log: Path) -> int:
    """Baseline runs past their first activity (each writes its id to `log`)."""
    return await asyncio.to_thread(lambda: len(log.read_text().splitlines()) if log.exists() else 0)


async def until(found_now: Callable[[], Awaitable[int]], n: int, timeout: float, what: str) -> None:
    started, last = time.monotonic(), -1
    while (found := await found_now()) < n:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"only {found} of {n} runs {what} after {timeout:.0f} s")
        if found != last and time.monotonic() - started > 5:
            say(f"  {found} of {n} {what}")
        last = found
        await asyncio.sleep(1)


def worker_process(module: str, queue: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, queue],
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"worker ready" not in line:
        proc.kill()
        raise RuntimeError(f"the worker ({module}) did not start: {line!r}")
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BASELINES = {"bare": "WakeBaseline", "status": "WakeBaselineStatus"}


async def phase(
    kind: str, m: int, tmp: Path, max_cached: int | None, baseline: str = "bare"
) -> dict[str, Any]:
    """One workload on its own server and worker; its figures."""
    server = DevServer(db_file=tmp / f"{kind}.db", port=free_port(), headless=True)
    say(f"[{kind}] starting the Temporal dev server on {server.address} ({server.db_file})")
    server.start()
    assert server.proc is not None
    worker: subprocess.Popen[bytes] | None = None
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"hibernation-{kind}-{uuid.uuid4().hex[:8]}"
        env = dict(os.environ, TEMPORAL_ADDRESS=server.address)
        env["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{tmp / f'{kind}-store.sqlite3'}"
        env["DURABLE_AGENTS_STATE_DIR"] = str(tmp / f"{kind}-state")
        if max_cached is not None:
            env[MAX_CACHED_WORKFLOWS] = str(max_cached)
        parked_log = tmp / f"{kind}-parked.txt"
        env[PARKED_LOG] = str(parked_log)
        module = "bench.sleeper" if kind == "ours" else "bench.wake_baseline"
        worker = worker_process(module, queue, env)
        await asyncio.sleep(2)
        idle_worker, idle_server = rss_mb(worker.pid), rss_mb(server.proc.pid)
        prefix = f"{kind}-{uuid.uuid4().hex[:6]}"

        async def begin(i: int) -> WorkflowHandle[Any, Any]:
            if kind == "ours":
                return await start(client, queue, f"{prefix}-{i}")
            return await client.start_workflow(
                BASELINES[baseline], id=f"{prefix}-{i}", task_queue=queue, result_type=str
            )

        began = time.monotonic()
        handles = await bounded(m, begin)
        say(f"[{kind}] started {m} runs in {time.monotonic() - began:.0f} s")
        if kind == "ours":
            waiting = f'TaskQueue = "{queue}" AND AgentStatus = "waiting_event"'
            await until(lambda: count(client, waiting), m, 3600, "waiting")
        else:
            await until(lambda: parked_baseline(parked_log), m, 3600, "waiting")
        parked = time.monotonic() - began
        await asyncio.sleep(3)  # the last workflow tasks finish; memory settles
        worker_rss, server_rss = rss_mb(worker.pid), rss_mb(server.proc.pid)
        say(
            f"[{kind}] all {m} wait ({parked:.0f} s after the first start): worker "
            f"{worker_rss:.0f} MB (idle {idle_worker:.0f}), server {server_rss:.0f} MB "
            f"(idle {idle_server:.0f})"
        )
        sent: dict[str, float] = {}

        async def wake(i: int) -> None:
            handle = handles[i]
            if kind == "ours":
                await handle.signal(names.EVENT_SIGNAL, EventSignal(name=EVENT))
            else:
                await handle.signal(SIGNAL)
            sent[handle.id] = time.time()

        cpu_before = cpu_s(worker.pid), cpu_s(server.proc.pid)
        burst = time.time()
        await bounded(m, wake)
        say(f"[{kind}] {m} events sent in {time.time() - burst:.1f} s")
        done = f'TaskQueue = "{queue}" AND ExecutionStatus = "Completed"'
        await until(lambda: count(client, done), m, 3600, "completed")
        worker_cpu, server_cpu = (
            cpu_s(pid) - before
            for pid, before in zip((worker.pid, server.proc.pid), cpu_before, strict=True)
        )
        closed: dict[str, datetime] = {}
        async for wf in client.list_workflows(f'TaskQueue = "{queue}"'):
            if wf.close_time is not None:
                closed[wf.id] = wf.close_time
        latencies = sorted(
            (closed[wid].timestamp() - at) * 1000 for wid, at in sent.items() if wid in closed
        )
        last = max(c.timestamp() for c in closed.values())
        figures = {
            "worker_rss_mb": round(worker_rss, 1),
            "server_rss_mb": round(server_rss, 1),
            "worker_kb_per_run": round((worker_rss - idle_worker) * 1000 / m, 2),
            "server_kb_per_run": round((server_rss - idle_server) * 1000 / m, 2),
            "wake_per_s": round(len(closed) / (last - burst), 1),
            "wake_p50_ms": round(statistics.median(latencies)),
            "wake_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]),
            "worker_cpu_ms_per_wake": round(worker_cpu * 1000 / m, 1),
            "server_cpu_ms_per_wake": round(server_cpu * 1000 / m, 1),
            "completed": len(closed),
            "park_s": round(parked, 1),
        }
        say(f"[{kind}] {json.dumps(figures, sort_keys=True)}")
        return figures
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()


async def benchmark(
    m: int,
    max_cached: int | None,
    only: str | None = None,
    baseline: str = "bare",
    rounds: int = 1,
) -> dict[str, Any]:
    """`rounds` times each workload, alternately (ours, baseline, ours, ...): each figure is the
    median of its rounds, `wake_ratio` the median of the rounds' ratios (`wake_ratios` each)."""
    ours_rounds: list[dict[str, Any]] = []
    base_rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-hibernation-") as tmp:
        for n in range(rounds):
            where = Path(tmp) / f"round-{n}"
            where.mkdir()
            if only != "baseline":
                ours_rounds.append(await phase("ours", m, where, max_cached))
            if only != "ours":
                base_rounds.append(await phase("baseline", m, where, max_cached, baseline))
    row: dict[str, Any] = {
        "m": m,
        "max_cached_workflows": max_cached,
        "baseline": baseline,
        "rounds": rounds,
    }
    row |= _medians(ours_rounds)
    row |= {f"baseline_{k}": v for k, v in _medians(base_rounds).items()}
    if ours_rounds and base_rounds:
        ratios = [
            round(o["wake_per_s"] / b["wake_per_s"], 2)
            for o, b in zip(ours_rounds, base_rounds, strict=True)
        ]
        row["wake_ratio"] = round(statistics.median(ratios), 2)
        row["wake_ratios"] = ratios
    return row


def _medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (one round: its figures)."""
    if not rounds:
        return {}
    out = {}
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        mid = statistics.median(values)
        whole = all(isinstance(v, int) for v in values) and float(mid).is_integer()
        out[key] = int(mid) if whole else round(mid, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hibernation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--m", type=int, default=2000, help="runs that wait (default 2,000)")
    parser.add_argument("--10k", dest="ten_k", action="store_true", help="M = 10,000")
    parser.add_argument(
        "--max-cached",
        type=int,
        default=None,
        help=f"the workers' max_cached_workflows ({MAX_CACHED_WORKFLOWS}); default: the SDK's",
    )
    parser.add_argument(
        "--only",
        choices=("ours", "baseline"),
        help="run one workload only (no wake_ratio): a 10,000-run phase takes half an hour",
    )
    parser.add_argument(
        "--baseline",
        choices=tuple(BASELINES),
        default="bare",
        help="bare: the workflow alone (the target's); status: plus AgentStatus and a deadline",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each workload this many times, alternately; report medians (default 1)",
    )
    args = parser.parse_args(argv)
    m = 10_000 if args.ten_k else args.m
    if m < 1:
        parser.error("--m must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    row = asyncio.run(benchmark(m, args.max_cached, args.only, args.baseline, args.rounds))
    if "wake_ratio" in row:
        say(
            f"M={m}: worker {row['worker_rss_mb']} MB while all wait (target <= 150 MB at "
            f"10,000), wake-up {row['wake_per_s']}/s = {row['wake_ratio']} x the {args.baseline} "
            f"baseline's {row['baseline_wake_per_s']}/s"
            + (" (target >= 0.9)" if args.baseline == "bare" else "")
        )
    print(json.dumps(row, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
