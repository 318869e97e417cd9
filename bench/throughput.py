"""Throughput of the agent loop against a raw Temporal baseline, measured in the same run.

    python -m bench.throughput [--runs N] [--turns K] [--repeat R] [--compare-live-text]

Starts its own sim (zero-latency scripted model) and its own in-memory Temporal dev server on
free loopback ports, runs one in-process worker per side with the same settings, warms each side
up once (N concurrent runs of 2 turns), then times N concurrent runs of the `bench` agent
(K turns, one `echo` call per turn, then a final answer) on the agent loop, and N concurrent runs
of the baseline (bench/baseline.py: a bare workflow with one `llm` and one `tool` activity making
the same HTTP requests). With --repeat R the sides alternate which goes first, and the medians
are reported.

Definitions:
- a *step* is one LLM call or one tool call, i.e. one activity execution; a K-turn run has
  2K + 1 steps (K model calls that ask for a tool, K tool calls, one model call that answers).
  The step count is checked against each run's history, so retries would show up (a tool that
  runs as a local activity is one marker event, counted as a step too).
- `runs_per_s`: runs completed per second of wall-clock time for the whole batch.
- `ms_per_step`: wall-clock milliseconds of the batch divided by the steps it executed, i.e. the
  cost of one step at this concurrency (`step_latency_ms` is the per-run view: a run's latency
  divided by its steps, averaged over runs; `cpu_ms_per_step` is the CPU time of this process,
  which holds the worker and the sim, plus the dev server's, per step: less sensitive than wall
  time to other load on the machine).
- `history_bytes_per_run`: the sum of `ByteSize()` of the run's history events (protobuf),
  averaged over the timed runs.
- `ratio_*`: agent loop / baseline; targets: ms_per_step <= 1.25, history bytes <= 2.0.
  On a small shared machine one batch's wall time varies by +-15%: use --repeat 3 or more
  before drawing conclusions from ms_per_step (history bytes are deterministic).

The agent streams its model calls (`AgentSpec.live_text`, on by default). `--compare-live-text`
adds a third side in the same run, the same agent with `live_text=False` on a worker of its own,
taking its turn in the rotation: `ratio_live_text_*` is streaming on / off.

Human-readable progress goes first; the LAST line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench.baseline import BaselineAgentWorkflow
from bench.baseline_activities import BaselineRun, llm, tool
from durable_agents import discover
from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.client import start_run
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.workers.client import connect
from durable_agents.workers.main import build_worker
from durable_agents.workers.plugin import sandbox
from sim.runner import SimServer
from sim.world import world

TARGET_MS_PER_STEP = 1.25
TARGET_HISTORY_BYTES = 2.0
GRACEFUL = timedelta(seconds=30)  # the same for both workers (build_worker's default)

Starter = Callable[[Client, int], Awaitable[WorkflowHandle[Any, Any]]]


def say(text: str) -> None:
    print(text, flush=True)


def is_step(event: HistoryEvent) -> bool:
    """An activity execution: a scheduled activity, or a local one (recorded as a marker)."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return True
    marker = event.marker_recorded_event_attributes
    return event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and (
        marker.marker_name == "core_local_activity"
    )


def steps_per_run(turns: int) -> int:
    return 2 * turns + 1


# ---- the two sides ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str
    task_queue: str
    start: Starter
    check: Callable[[Any, int], None]


def agent_side(task_queue: str, name: str = "agent loop") -> Side:
    async def start(client: Client, turns: int) -> WorkflowHandle[Any, Any]:
        run = AgentRun(agent="bench", input={"turns": turns}, principal="bench")
        wid = f"ours-{uuid.uuid4().hex[:12]}"
        return await start_run(client, run, run_id=wid, task_queue=task_queue)

    def check(result: Any, turns: int) -> None:
        if not isinstance(result, AgentResult) or result.outcome != "completed":
            raise RuntimeError(f"agent run did not complete: {result!r}")
        if result.turns != turns + 1:
            raise RuntimeError(f"agent run took {result.turns} turns, expected {turns + 1}")

    return Side(name, task_queue, start, check)


def baseline_side(task_queue: str) -> Side:
    async def start(client: Client, turns: int) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            BaselineAgentWorkflow.run,
            BaselineRun(turns=turns),
            id=f"base-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
        )

    def check(result: Any, turns: int) -> None:
        if result != f"done after {turns} turns":
            raise RuntimeError(f"baseline run ended unexpectedly: {result!r}")

    return Side("baseline", task_queue, start, check)


def baseline_worker(client: Client, task_queue: str) -> Worker:
    """The same settings as workers.main.build_worker: sandbox, default slots, shutdown grace."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineAgentWorkflow],
        activities=[llm, tool],
        workflow_runner=sandbox(),
        graceful_shutdown_timeout=GRACEFUL,
    )


# ---- one timed batch --------------------------------------------------------------------------


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Batch:
    elapsed: float
    cpu: float  # CPU seconds of this process (worker, sim, client) plus the dev server
    latencies: list[float]
    handles: list[WorkflowHandle[Any, Any]]
    history_bytes: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return len(self.handles) / self.elapsed

    def ms_per_step(self) -> float:
        return 1000 * self.elapsed / sum(self.steps)

    def cpu_ms_per_step(self) -> float:
        return 1000 * self.cpu / sum(self.steps)

    def step_latency_ms(self) -> float:
        return statistics.fmean(
            1000 * lat / s for lat, s in zip(self.latencies, self.steps, strict=True)
        )


async def run_batch(
    client: Client, side: Side, runs: int, turns: int, server_pid: int | None = None
) -> Batch:
    async def one() -> tuple[WorkflowHandle[Any, Any], float]:
        t0 = time.perf_counter()
        handle = await side.start(client, turns)
        side.check(await handle.result(), turns)
        return handle, time.perf_counter() - t0

    cpu0 = time.process_time() + server_cpu_seconds(server_pid)
    t0 = time.perf_counter()
    done = await asyncio.gather(*(one() for _ in range(runs)))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() + server_cpu_seconds(server_pid) - cpu0
    batch = Batch(elapsed, cpu, [lat for _, lat in done], [h for h, _ in done])
    for handle in batch.handles:
        events = (await handle.fetch_history()).events
        batch.history_bytes.append(sum(e.ByteSize() for e in events))
        batch.steps.append(sum(1 for e in events if is_step(e)))
    if any(s != steps_per_run(turns) for s in batch.steps):
        raise RuntimeError(f"{side.name}: steps per run {set(batch.steps)}, expected 2K+1")
    return batch


# ---- where the history bytes go ---------------------------------------------------------------


def event_name(event: HistoryEvent) -> str:
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    return "".join(part.title() for part in name.split("_"))


def breakdown(events: list[HistoryEvent]) -> Counter[str]:
    """Bytes by event type, plus the payloads and metadata inside them."""
    out: Counter[str] = Counter()
    for e in events:
        out[f"event {event_name(e)}"] += e.ByteSize()
        out["  of which: activity inputs"] += (
            e.activity_task_scheduled_event_attributes.input.ByteSize()
        )
        out["  of which: activity results"] += (
            e.activity_task_completed_event_attributes.result.ByteSize()
        )
        out["  of which: workflow input"] += (
            e.workflow_execution_started_event_attributes.input.ByteSize()
        )
        out["  of which: workflow result"] += (
            e.workflow_execution_completed_event_attributes.result.ByteSize()
        )
        out["  of which: user metadata (summaries)"] += e.user_metadata.ByteSize()
    return out


async def print_breakdown(ours: WorkflowHandle[Any, Any], base: WorkflowHandle[Any, Any]) -> None:
    a = breakdown(list((await ours.fetch_history()).events))
    b = breakdown(list((await base.fetch_history()).events))
    say("history bytes of one run, by part (agent loop | baseline):")
    for key in sorted(set(a) | set(b), key=lambda k: (k.startswith(" "), -a[k] - b[k])):
        if a[key] or b[key]:
            say(f"  {key:<42} {a[key]:>9,} | {b[key]:>9,}")


# ---- the whole benchmark ----------------------------------------------------------------------


def ratio(ours: float, base: float) -> float:
    return round(ours / base, 3) if base else float("inf")


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    say(f"starting the Temporal dev server on {server.address} (in memory)")
    server.start()
    try:
        client = await connect(server.address, wait_seconds=30)
        suffix = uuid.uuid4().hex[:8]
        ours = agent_side(f"bench-agent-{suffix}")
        base = baseline_side(f"bench-baseline-{suffix}")
        catalog = discover()
        bench = dataclasses.replace(catalog.agents["bench"], live_text=False)
        unstreamed = dataclasses.replace(catalog, agents={**catalog.agents, "bench": bench})
        plain = agent_side(f"bench-plain-{suffix}", "no live text")
        async with contextlib.AsyncExitStack() as workers:
            await workers.enter_async_context(
                build_worker(client, ours.task_queue, graceful=GRACEFUL, agents=catalog)
            )
            await workers.enter_async_context(baseline_worker(client, base.task_queue))
            if args.compare_live_text:
                await workers.enter_async_context(
                    build_worker(client, plain.task_queue, graceful=GRACEFUL, agents=unstreamed)
                )
            pid = server.proc.pid if server.proc else None
            others = [plain] if args.compare_live_text else []
            return await measure(client, args, ours, base, pid, others)
    finally:
        server.stop()


async def measure(
    client: Client,
    args: argparse.Namespace,
    ours: Side,
    base: Side,
    server_pid: int | None,
    others: list[Side] | None = None,
) -> dict[str, Any]:
    runs, turns = args.runs, args.turns
    sides = [ours, base, *(others or [])]
    # Once per side, at full concurrency: imports, sandboxes, connection pools, task queues.
    warm = min(turns, 2)
    say(f"warming up: {runs} concurrent runs of {warm} turns on each side")
    for side in sides:
        await asyncio.wait_for(run_batch(client, side, runs, warm), args.timeout)
    results: dict[str, list[Batch]] = {side.name: [] for side in sides}
    for rep in range(args.repeat):
        shift = rep % len(sides)  # each side goes first in turn
        order = sides[shift:] + sides[:shift]
        for side in order:
            batch = await asyncio.wait_for(
                run_batch(client, side, runs, turns, server_pid), args.timeout
            )
            results[side.name].append(batch)
            say(
                f"[{rep + 1}/{args.repeat}] {side.name:<10} {runs} runs x {turns} turns: "
                f"{batch.elapsed:5.2f} s, {batch.runs_per_s:5.2f} runs/s, "
                f"{batch.ms_per_step():5.2f} ms/step (CPU {batch.cpu_ms_per_step():5.2f} ms), "
                f"step latency {batch.step_latency_ms():6.1f} ms, "
                f"{statistics.fmean(batch.history_bytes):,.0f} history bytes/run"
            )
    await print_breakdown(results[ours.name][-1].handles[0], results[base.name][-1].handles[0])

    def figures(batches: list[Batch], prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}runs_per_s": round(statistics.median(b.runs_per_s for b in batches), 3),
            f"{prefix}ms_per_step": round(statistics.median(b.ms_per_step() for b in batches), 3),
            f"{prefix}cpu_ms_per_step": round(
                statistics.median(b.cpu_ms_per_step() for b in batches), 3
            ),
            f"{prefix}step_latency_ms": round(
                statistics.median(b.step_latency_ms() for b in batches), 3
            ),
            f"{prefix}history_bytes_per_run": round(
                statistics.fmean(x for b in batches for x in b.history_bytes)
            ),
        }

    a, b = figures(results[ours.name]), figures(results[base.name], "baseline_")
    out: dict[str, Any] = {
        "runs": runs,
        "turns": turns,
        "repeat": args.repeat,
        "steps_per_run": steps_per_run(turns),
        **a,
        **b,
        "ratio_runs_per_s": ratio(a["runs_per_s"], b["baseline_runs_per_s"]),
        "ratio_ms_per_step": ratio(a["ms_per_step"], b["baseline_ms_per_step"]),
        "ratio_cpu_ms_per_step": ratio(a["cpu_ms_per_step"], b["baseline_cpu_ms_per_step"]),
        # One ratio per repeat (its two batches ran back to back): shows how noisy the box is.
        "ratio_ms_per_step_by_repeat": [
            ratio(x.ms_per_step(), y.ms_per_step())
            for x, y in zip(results[ours.name], results[base.name], strict=True)
        ],
        "ratio_history_bytes": ratio(
            a["history_bytes_per_run"], b["baseline_history_bytes_per_run"]
        ),
    }
    out["within_target"] = (
        out["ratio_ms_per_step"] <= TARGET_MS_PER_STEP
        and out["ratio_history_bytes"] <= TARGET_HISTORY_BYTES
    )
    for side in others or []:  # the same agent, live text off
        c = figures(results[side.name], "no_live_text_")
        out |= c | {
            "ratio_live_text_ms_per_step": ratio(a["ms_per_step"], c["no_live_text_ms_per_step"]),
            "ratio_live_text_cpu_ms_per_step": ratio(
                a["cpu_ms_per_step"], c["no_live_text_cpu_ms_per_step"]
            ),
            "ratio_live_text_history_bytes": ratio(
                a["history_bytes_per_run"], c["no_live_text_history_bytes_per_run"]
            ),
            "no_live_text_ratio_ms_per_step": ratio(
                c["no_live_text_ms_per_step"], b["baseline_ms_per_step"]
            ),
        }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Agent-loop throughput and history size against a raw Temporal baseline.",
    )
    parser.add_argument("--runs", type=int, default=20, help="concurrent runs per batch (N)")
    parser.add_argument("--turns", type=int, default=10, help="turns per run (K)")
    parser.add_argument("--repeat", type=int, default=1, help="batches per side (medians)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds one batch may take before giving up"
    )
    parser.add_argument(
        "--compare-live-text",
        action="store_true",
        help="also time the agent with live text off (a third side, in the same run)",
    )
    args = parser.parse_args(argv)
    for name in ("runs", "turns", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.turns > 10_000:
        parser.error("--turns must be at most 10000 (the bench agent's limit)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        sim = SimServer(Path(tmp) / "sim.db", port=0).start()
        try:
            say(f"sim (model and company systems) at {sim.url}")
            # Before any activity reads its settings; they are cached per process.
            os.environ.update(world(sim.url))
            out = asyncio.run(benchmark(args))
        finally:
            sim.stop()
    verdict = "within" if out["within_target"] else "NOT within"
    say(
        f"agent loop / baseline: {out['ratio_ms_per_step']}x ms per step "
        f"(target <= {TARGET_MS_PER_STEP}), {out['ratio_history_bytes']}x history bytes "
        f"(target <= {TARGET_HISTORY_BYTES}): {verdict} target"
    )
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
