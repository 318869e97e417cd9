"""History size of a long agent run: ours (the conversation by reference) against the naive way.

    python -m bench.history [--ks 10,25,50,100,200] [--chars 2000] [--compare-live-text]

For each K, one run of the `reader` agent: K turns, one `read_document` call per turn whose result
is a document of `--chars` characters; once in our mode (each message enters history once, model
calls name the conversation by hash, continue-as-new by size) and once in the naive mode (the
whole conversation in every model call, no continue-as-new: what agent frameworks on Temporal do
today). Both on one in-memory Temporal dev server and one sim, in this process. With
`--compare-live-text`, a third run per K, `ours-quiet`, is ours with the model's text not
streamed onto the run's live stream (`AgentSpec.live_text=False`): what streaming costs.

Prints one JSON object per line on stdout, one per K and mode:
- `history_bytes`: the sum of `ByteSize()` of every history event, over every run of the chain
  (a run that continued as new is still one run);
- `history_events`: the number of those events; `runs`: runs in the chain;
- `largest_payload_bytes`: the largest single payload in any event (inputs, results, signals);
- `message_bytes`: the total size of the conversation's messages, each as canonical JSON;
- `ratio_to_messages`: history_bytes / message_bytes;
- `outcome`: the run's outcome, or `terminated` if the server stopped it (the history limit).
Targets at K=100: ours within 1.5x of message_bytes, and at least 20x below naive. Progress and
the verdict go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from google.protobuf.message import Message as Proto
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from durable_agents import discover
from durable_agents._vocab import chain
from durable_agents._vocab.schemas import AgentRun
from durable_agents.client import start_run
from durable_agents.starters.devserver import DevServer, free_port
from durable_agents.workers.client import connect
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from sim.runner import SimServer
from sim.world import world

TARGET_RATIO_TO_MESSAGES = 1.5
TARGET_BELOW_NAIVE = 20.0
Mode = Literal["ours", "naive", "ours-quiet"]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def payloads_in(message: Proto) -> list[Payload]:
    """Every Payload inside a protobuf message (a history event), at any depth."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Proto):
            found += payloads_in(value)
            continue
        items = value.values() if hasattr(value, "values") else value  # a map, or a list
        for item in items:
            if isinstance(item, Proto):
                found += payloads_in(item)
    return found


def payload_sizes(message: Proto) -> list[int]:
    return [p.ByteSize() for p in payloads_in(message)]


async def chain_of(client: Client, workflow_id: str, first_run: str) -> list[WorkflowHistory]:
    histories, run_id = [], first_run
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        attrs = last.workflow_execution_continued_as_new_event_attributes
        run_id = (
            attrs.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return histories


async def measure(client: Client, queue: str, k: int, chars: int, mode: Mode) -> dict[str, Any]:
    run = AgentRun(
        agent="reader",
        input={"turns": k, "chars": chars},
        conversation="inline" if mode == "naive" else "reference",
    )
    started = time.monotonic()
    handle = await start_run(client, run, f"history-{mode}-{k}-{uuid.uuid4().hex[:6]}", queue)
    outcome: str
    try:
        outcome = (await handle.result()).outcome
        messages = await handle.query(AgentWorkflow.conversation)
    except WorkflowFailureError as err:
        outcome, messages = f"failed: {err.cause}", []
    histories = await chain_of(client, handle.id, handle.result_run_id or "")
    events = [e for h in histories for e in h.events]
    history_bytes = sum(e.ByteSize() for e in events)
    message_bytes = sum(len(chain.encode_message(m)) for m in messages)
    return {
        "k": k,
        "mode": mode,
        "chars": chars,
        "outcome": outcome,
        "history_bytes": history_bytes,
        "history_events": len(events),
        "runs": len(histories),
        "largest_payload_bytes": max(s for e in events for s in payload_sizes(e) or [0]),
        "message_bytes": message_bytes,
        "ratio_to_messages": round(history_bytes / message_bytes, 3) if message_bytes else None,
        "seconds": round(time.monotonic() - started, 1),
    }


async def benchmark(ks: list[int], chars: int, quiet: bool = False) -> list[dict[str, Any]]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    say(f"starting the Temporal dev server on {server.address} (in memory)")
    server.start()
    rows = []
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"bench-history-{uuid.uuid4().hex[:8]}"
        catalog = discover()
        reader = dataclasses.replace(catalog.agents["reader"], live_text=False)
        silent = dataclasses.replace(catalog, agents={**catalog.agents, "reader": reader})
        modes: tuple[Mode, ...] = ("ours", "naive", "ours-quiet") if quiet else ("ours", "naive")
        async with build_worker(client, queue), build_worker(client, f"{queue}-q", agents=silent):
            for k in ks:
                for mode in modes:
                    where = f"{queue}-q" if mode == "ours-quiet" else queue
                    row = await measure(client, where, k, chars, mode)
                    print(json.dumps(row, sort_keys=True), flush=True)
                    say(
                        f"K={k:<4} {mode:<10} {row['history_bytes']:>11,} bytes of history, "
                        f"{row['history_events']:>6} events, largest payload "
                        f"{row['largest_payload_bytes']:>9,}, messages {row['message_bytes']:>9,} "
                        f"({row['seconds']} s, {row['outcome']})"
                    )
                    rows.append(row)
    finally:
        server.stop()
    return rows


def verdict(rows: list[dict[str, Any]], k: int = 100) -> None:
    by = {(r["k"], r["mode"]): r for r in rows}
    ours, naive = by.get((k, "ours")), by.get((k, "naive"))
    if ours is None or naive is None:
        return
    to_messages = ours["history_bytes"] / ours["message_bytes"]
    below = naive["history_bytes"] / ours["history_bytes"]
    ok = to_messages <= TARGET_RATIO_TO_MESSAGES and below >= TARGET_BELOW_NAIVE
    say(
        f"K={k}: ours is {to_messages:.2f}x the messages (target <= {TARGET_RATIO_TO_MESSAGES}) "
        f"and {below:.1f}x below naive (target >= {TARGET_BELOW_NAIVE}): "
        f"{'within' if ok else 'NOT within'} target"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ks", default="10,25,50,100,200", help="turns per run, comma-separated")
    parser.add_argument("--chars", type=int, default=2000, help="characters per tool result")
    parser.add_argument(
        "--compare-live-text",
        action="store_true",
        help="also run ours with the model's text not streamed (what live text costs)",
    )
    args = parser.parse_args(argv)
    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        parser.error(f"--ks must be comma-separated whole numbers, not {args.ks!r}")
    if not ks or any(k < 1 or k > 10_000 for k in ks):
        parser.error("--ks must name turns between 1 and 10000")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        sim = SimServer(Path(tmp) / "sim.db", port=0).start()
        try:
            os.environ.update(world(sim.url))
            os.environ["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
            rows = asyncio.run(benchmark(ks, args.chars, args.compare_live_text))
        finally:
            sim.stop()
    verdict(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
