"""One run that goes on as long as its work: K turns (10,000 by default), one tool call a turn
whose result is `--chars` characters (2,000), on an in-memory Temporal dev server.

    python -m bench.long_run [--k 10000] [--chars 2000] [--compact-at-tokens 20000]

The agent (`marathon`, below) is scripted in the worker's process, so the figures are the
platform's: its history, continue-as-new and carried state, not a model's speed. Its
conversation is compacted when it passes `--compact-at-tokens` (as any long-lived agent's must
be to fit a context window); the run continues as new past 4 MB of history
(`AgentRun.continue_after_bytes`'s default), carrying the conversation by reference.

Progress goes to stderr; the last line on stdout is one JSON object:
- `turns`, `completed` (the run completed and read every document), `continuations`;
- `max_history_bytes`: the largest history of any run in the chain (sum of its events' sizes);
- `max_carried_bytes`: the largest input one run handed the next (continue-as-new);
- `history_bytes`: all runs together; `compactions` (summarize calls); `wall_s`; `turns_per_s`.
Targets (issue 15): no history over 4 MB, no carried input over 64 KB. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.history import chain_of
from durable_agents import AgentSet, AgentSpec, Directory, ToolContext, tool
from durable_agents._vocab import names
from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.testing import Message, Reply, ScriptedModel, call, results, task_input
from durable_agents.workers.client import connect
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow

SUMMARY = "Summary: documents read so far: "


class Marathon(BaseModel):
    turns: int = Field(default=10_000, ge=1, le=100_000)
    chars: int = Field(default=2000, ge=0, le=100_000)


class Page(BaseModel):
    n: int
    chars: int


class PageText(BaseModel):
    n: int
    text: str


@tool(side_effect="read_only")
async def read_page(args: Page, ctx: ToolContext) -> PageText:
    """Read page `n` (`chars` characters)."""
    line = f"page {args.n}: durable agents keep going. "
    return PageText(n=args.n, text=(line * (args.chars // len(line) + 1))[: args.chars])


def read_so_far(messages: list[Message]) -> int:
    """Pages read: those in a compaction summary, and the results since."""
    base = 0
    for m in messages:
        if m.role == "user" and m.content.startswith(SUMMARY):
            base = int(m.content[len(SUMMARY) :].split()[0])
    return base + len(results(messages, "read_page"))


def script(messages: list[Message]) -> Reply:
    if len(messages) == 1 and messages[0].content.startswith(("user: ", "assistant: ", "tool ")):
        # A compaction (the `summarize` activity hands the turns over as one user message): the
        # summary keeps the count, and is short, as a model's would be.
        text = messages[-1].content if messages else ""
        previous = 0
        for line in text.splitlines():
            if SUMMARY in line:
                previous = int(line.split(SUMMARY)[1].split()[0])
        count = previous + sum(1 for ln in text.splitlines() if ln.startswith("tool read_page"))
        return f"{SUMMARY}{count} pages."
    data = task_input(messages)
    done = read_so_far(messages)
    if done < int(data["turns"]):
        return call("read_page", n=done + 1, chars=int(data["chars"]))
    return f"read {done} pages"


MARATHON = AgentSpec(
    name="marathon",
    version="1.0.0",
    description="Reads the given number of pages, one a turn, then says how many it read.",
    system_prompt="Read the pages one by one with read_page, then say how many you read.",
    model_route=("scripted:marathon",),
    tools=(read_page,),
    input_model=Marathon,
    max_turns=100_001,
)
# Runs the bench starts are code's: they act for a service principal, with no proof.
PEOPLE = Directory(services=frozenset({"tester"}), groups={"operators": frozenset({"olga"})})
AGENTS = AgentSet((MARATHON,), directory=PEOPLE)
MODELS = [ScriptedModel("marathon", script)]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def measure(
    client: Client, queue: str, k: int, chars: int, compact_at: int
) -> dict[str, Any]:
    run = AgentRun(
        agent="marathon",
        principal="tester",
        input={"turns": k, "chars": chars},
        compact_at_tokens=compact_at,
    )
    started = time.monotonic()
    handle = await client.start_workflow(
        names.WORKFLOW,
        run,
        id=f"long-run-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=AgentResult,
    )
    done = asyncio.ensure_future(handle.result())
    while not done.done():
        await asyncio.wait([done], timeout=30)
        if not done.done():
            status = await handle.query(AgentWorkflow.status)
            say(
                f"turn {status.turn:>6} of {k}, continued {status.continued} times, "
                f"{time.monotonic() - started:6.0f} s"
            )
    wall = time.monotonic() - started
    try:
        result: AgentResult | None = done.result()
    except Exception as exc:  # noqa: BLE001  (a figure, not a crash: the run's failure)
        say(f"the run failed: {exc}")
        result = None
    histories = await chain_of(client, handle.id, handle.result_run_id or "")
    sizes = [sum(e.ByteSize() for e in h.events) for h in histories]
    carried = [
        h.events[-1].workflow_execution_continued_as_new_event_attributes.input.ByteSize()
        for h in histories
        if h.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ]
    status = await handle.query(AgentWorkflow.status)
    summarized = sum(
        e.activity_task_scheduled_event_attributes.activity_type.name == names.SUMMARIZE
        for h in histories
        for e in h.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    completed = bool(
        result and result.outcome == "completed" and result.answer == f"read {k} pages"
    )
    return {
        "turns": k,
        "chars": chars,
        "completed": completed,
        "outcome": result.outcome if result else "failed",
        "answer": result.answer if result else "",
        "turns_run": status.turn,
        "continuations": len(histories) - 1,
        "max_history_bytes": max(sizes),
        "history_bytes": sum(sizes),
        "max_carried_bytes": max(carried, default=0),
        "compactions": summarized,
        "compact_at_tokens": compact_at,
        "wall_s": round(wall, 1),
        "turns_per_s": round(k / wall, 1),
    }


async def benchmark(k: int, chars: int, compact_at: int) -> dict[str, Any]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    say(f"starting the Temporal dev server on {server.address} (in memory)")
    server.start()
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"bench-long-run-{uuid.uuid4().hex[:8]}"
        async with build_worker(client, queue, agents=[AGENTS], models=MODELS):
            return await measure(client, queue, k, chars, compact_at)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.long_run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--k", type=int, default=10_000, help="turns of the run")
    parser.add_argument("--chars", type=int, default=2000, help="characters per tool result")
    parser.add_argument(
        "--compact-at-tokens", type=int, default=20_000, help="compact the conversation past this"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.k <= 100_000:
        parser.error("--k must be between 1 and 100000")
    with tempfile.TemporaryDirectory(prefix="bench-long-run-") as tmp:
        os.environ["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
        os.environ.setdefault("DURABLE_AGENTS_STATE_DIR", tmp)
        row = asyncio.run(benchmark(args.k, args.chars, args.compact_at_tokens))
    say(
        f"{row['turns']} turns: completed={row['completed']}, {row['continuations']} "
        f"continuations, largest history {row['max_history_bytes']:,} bytes (target <= 4 MB), "
        f"largest carried input {row['max_carried_bytes']:,} bytes (target <= 64 KB), "
        f"{row['wall_s']} s"
    )
    print(json.dumps(row, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
