"""How fast a watcher sees the model's words: from the moment `call_llm` reads a piece of the
reply from the provider's stream to the moment a watcher (`RunHandle.watch`, what `agentctl
watch` and the console read) has it, against reading the provider's stream directly.

    python -m bench.live [--runs 20] [--pace-ms 100] [--browser]

Each run is the `reader` agent's one document and its final words, which the sim streams in
chunks every `--pace-ms`; a watcher follows the run from its start. Per run:
- `stream_ms`: the first piece's arrival at the watcher minus the time the worker read it (both
  clocks are this process's: worker and watcher run here);
- `direct_ms`: for the same words read directly from the sim's stream, the time between two
  consecutive chunks' arrival minus the pace (what reading the provider directly adds: ~0).
- with `--browser`, `browser_ms`: the same for the approvers' console in Chromium (Playwright, the
  distribution's package): olga, an operator, signed in at the sim's provider, has the run's page
  open (its server-sent events) before the words come; the first piece's arrival in the page
  (`Date.now()` when the page's EventSource delivers it) minus the time the worker read it.
Prints one JSON line per run, then p50 and p99 of each on stderr. A figure, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
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


# Wraps the page's EventSource: the first text piece's `at` and when the page had it.
FIRST_TEXT = """
(() => {
  const Native = window.EventSource;
  window.EventSource = function (url, init) {
    const source = new Native(url, init);
    source.addEventListener("open", () => { window.__opened = Date.now(); });
    source.addEventListener("message", (m) => {
      const event = JSON.parse(m.data);
      if (event.kind === "text" && !window.__first) {
        window.__first = {at: event.at, seen: Date.now()};
      }
    });
    return source;
  };
})();
"""


async def in_browser(page: Any, console_url: str, client: Any, queue: str) -> float:
    """The console's run page open before the words come: read time to the page's arrival."""
    # Six documents first: the page is open (its events flowing) before the last turn speaks.
    run = AgentRun(agent="reader", input={"turns": 6, "chars": 200}, principal="bench")
    handle = await start_run(client, run, f"live-{uuid.uuid4().hex[:8]}", queue)
    await page.goto(f"{console_url}/runs/{handle.id}")
    await page.wait_for_function("window.__first", timeout=60_000)
    first = await page.evaluate("window.__first")
    opened = await page.evaluate("window.__opened")
    await handle.result()
    at = datetime.fromisoformat(first["at"]).timestamp() * 1000
    if opened > at:
        raise PageLate
    return float(first["seen"] - at)


async def in_page(page: Any, console_url: str, client: Any, queue: str) -> float:
    """`in_browser`, with a new run (at most three) while the page opened too late."""
    for _ in range(2):
        await page.evaluate("window.__first = null")
        try:
            return await in_browser(page, console_url, client, queue)
        except PageLate:
            say("the page opened after the first words: once more")
    await page.evaluate("window.__first = null")
    return await in_browser(page, console_url, client, queue)


class PageLate(Exception):
    """The page opened after the first words were read: that run does not count."""


@contextlib.asynccontextmanager
async def console_page(client: Any, state_dir: Path) -> AsyncIterator[tuple[Any, str]]:
    """The console on a free port, and a Chromium page signed in as olga (an operator)."""
    import shutil

    import uvicorn
    from playwright.async_api import async_playwright

    from durable_agents.settings import Settings
    from durable_agents.starters.console import create_app
    from sim.person import password

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(AgentClient(client), Settings.from_env(), url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            # The bench reads the page with its own script (not the CSP's concern).
            context = await browser.new_context(bypass_csp=True)
            await context.add_init_script(FIRST_TEXT)
            page = await context.new_page()
            await page.goto(url)
            await page.fill("input[name=username]", "olga")
            await page.fill("input[name=password]", password(state_dir, "olga"))
            await page.click("button[type=submit]")
            await page.click("button[value=allow]")
            await page.wait_for_url(f"{url}/**")
            yield page, url
            await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def benchmark(
    runs: int, pace_ms: float, sim_url: str, state_dir: Path | None = None
) -> list[dict[str, float]]:
    server = DevServer(db_file=None, port=free_port(), headless=True)
    server.start()
    rows = []
    try:
        client = await connect(server.address, wait_seconds=30)
        queue = f"bench-live-{uuid.uuid4().hex[:8]}"
        agents = AgentClient(client)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(build_worker(client, queue))
            page = None
            if state_dir is not None:
                page, console_url = await stack.enter_async_context(console_page(client, state_dir))
            await watched(agents, client, queue)  # warm: the first run loads the model clients
            for _ in range(runs):
                row = {
                    "stream_ms": round(await watched(agents, client, queue), 1),
                    "direct_ms": round(await direct(sim_url, pace_ms), 1),
                }
                if page is not None:
                    row["browser_ms"] = round(await in_page(page, console_url, client, queue), 1)
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
    parser.add_argument("--pace-ms", type=float, default=100.0)
    parser.add_argument(
        "--browser", action="store_true", help="also the console in Chromium (browser_ms)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        os.environ["DURABLE_AGENTS_SIM_STREAM_MS"] = str(args.pace_ms)
        sim = SimServer(Path(tmp) / "sim.db", port=0).start()
        try:
            os.environ.update(world(sim.url, sim.credentials))
            os.environ["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
            os.environ["DURABLE_AGENTS_AUDIT_PATH"] = str(Path(tmp) / "audit.sqlite3")
            os.environ.setdefault("DURABLE_AGENTS_METRICS_ADDRESS", "off")
            state = sim.db_path.parent if args.browser else None
            rows = asyncio.run(benchmark(args.runs, args.pace_ms, sim.url, state))
        finally:
            sim.stop()
    for key in (
        ("stream_ms", "browser_ms", "direct_ms") if args.browser else ("stream_ms", "direct_ms")
    ):
        values = [r[key] for r in rows]
        say(
            f"{key}: p50 {statistics.median(values):.0f} ms, p99 {pct(values, 0.99):.0f} ms "
            f"(min {min(values):.0f}, max {max(values):.0f}; {len(values)} runs, chunks every "
            f"{args.pace_ms:g} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
