"""How fast a watcher sees the model's words: from the moment `call_llm` reads a piece of the
reply from the provider's stream to the moment a watcher (`RunHandle.watch`, what `agentctl
watch` and the console read) has it, against reading the provider's stream directly.

    python -m bench.live [--runs 20] [--pace-ms 50]

Each run is the `reader` agent's one document and its final words, which the sim streams in
chunks every `--pace-ms`; a watcher follows the run from its start. Per run:
- `stream_ms`: the first piece's arrival at the watcher minus the time the worker read it (both
  clocks are this process's: worker and watcher run here);
- `direct_ms`: for the same words read directly from the sim's stream, the time between two
  consecutive chunks' arrival minus the pace (what reading the provider directly adds: ~0).
Prints one JSON line per run, then p50 and p99 of each on stderr. A figure, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai

from durable_agents._vocab.schemas import AgentRun
from durable_agents.client import AgentClient, start_run
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.workers.client import connect
from durable_agents.workers.main import build_worker
from sim.runner import SimServer
from sim.world import world

TASK = (
    "Read the documents the input asks for with read_document, then report.\n\nInput:\n"
    '{"turns": 1, "chars": 200}'
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def watched(agents: AgentClient, client: Any, queue: str) -> float:
    run = AgentRun(agent="reader", input={"turns": 1, "chars": 200}, principal="bench")
    handle = await start_run(client, run, f"live-{uuid.uuid4().hex[:8]}", queue)
    async for _, event in agents.run(handle.id).watch():
        if event.kind == "text":
            seen = datetime.now(UTC)
            await handle.result()
            return (seen - event.at).total_seconds() * 1000
    raise AssertionError("no text was streamed")


async def direct(sim_url: str, pace_ms: float) -> float:
    """Read a streamed reply from the sim itself: the gap between chunks beyond the pace."""
    llm = openai.AsyncOpenAI(base_url=f"{sim_url}/v1", api_key="none", max_retries=0)
    messages: Any = [
        {"role": "system", "content": "x"},
        {"role": "user", "content": TASK},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_document", "arguments": '{"doc_id": "doc-1"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"doc_id": "doc-1", "text": "x"}'},
    ]
    arrivals = []
    async for chunk in await llm.chat.completions.create(
        model="reader", messages=messages, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    await llm.close()
    gaps = [(b - a) * 1000 - pace_ms for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return max(0.0, min(gaps)) if gaps else 0.0


async def benchmark(runs: int, pace_ms: float, sim_url: str) -> list[dict[str, float]]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    server.start()
    rows = []
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"bench-live-{uuid.uuid4().hex[:8]}"
        agents = AgentClient(client)
        async with build_worker(client, queue):
            await watched(agents, client, queue)  # warm: the first run loads the model clients
            for _ in range(runs):
                row = {
                    "stream_ms": round(await watched(agents, client, queue), 1),
                    "direct_ms": round(await direct(sim_url, pace_ms), 1),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pace-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        os.environ["DURABLE_AGENTS_SIM_STREAM_MS"] = str(args.pace_ms)
        sim = SimServer(Path(tmp) / "sim.db", port=0).start()
        try:
            os.environ.update(world(sim.url, sim.credentials))
            os.environ["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
            os.environ["DURABLE_AGENTS_AUDIT_PATH"] = str(Path(tmp) / "audit.sqlite3")
            os.environ.setdefault("DURABLE_AGENTS_METRICS_ADDRESS", "off")
            rows = asyncio.run(benchmark(args.runs, args.pace_ms, sim.url))
        finally:
            sim.stop()
    for key in ("stream_ms", "direct_ms"):
        values = [r[key] for r in rows]
        say(
            f"{key}: p50 {statistics.median(values):.0f} ms, p99 {pct(values, 0.99):.0f} ms "
            f"(min {min(values):.0f}, max {max(values):.0f}; {len(values)} runs, chunks every "
            f"{args.pace_ms:g} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
