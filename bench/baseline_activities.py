"""The raw-Temporal baseline's activities and messages: `llm` and `tool`, nothing else.

They make the same HTTP requests as the agent loop's `call_llm` and `run_tool` for the `bench`
agent: the same openai client call (SDK retries off, Temporal owns them) with the same system
prompt, messages and tool schema, and the same POST to `{sim}/tools/echo` with an idempotency key.
What they leave out is the framework: no route parsing, no provider-neutral models, no contract
validation, no failure taxonomy beyond "retry or not". The sim's URL comes from
`DURABLE_AGENTS_SIM_URL`, read on the first call (after the benchmark has set it).

This module is imported by the baseline workflow through the sandbox's pass-through, like the
agent loop imports its activities and models, so it is loaded once per process.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable
from datetime import timedelta
from functools import lru_cache
from typing import Any, TypeVar

import httpx
import openai
from pydantic import BaseModel, Field
from temporalio import activity

from sim.agents.bench import BENCH

T = TypeVar("T")

MODEL = "bench"
# The request's fixed parts, exactly as the agent loop's openai wire format renders them.
SYSTEM = BENCH.system_prompt
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": t.schema().model_dump(mode="json")} for t in BENCH.tools
]
MAX_TOKENS = BENCH.max_tokens


def task_message(turns: int) -> str:
    """The first user message: the same text the agent loop builds from the bench spec."""
    return BENCH.task_message("", {"turns": turns})


class BaselineRun(BaseModel):
    """Input of the baseline workflow."""

    turns: int = Field(default=3, ge=1, le=10_000)
    max_turns: int = 10_001


class LLMInput(BaseModel):
    """The whole conversation so far, in OpenAI's message shape (system message first)."""

    messages: list[dict[str, Any]]


class ToolInput(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str


def _sim_url() -> str:
    return os.environ.get("DURABLE_AGENTS_SIM_URL", "http://127.0.0.1:8787").rstrip("/")


@lru_cache(maxsize=1)
def _openai() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{_sim_url()}/v1", api_key="sim-key", max_retries=0)


@lru_cache(maxsize=1)
def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=_sim_url())


async def _heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating at half the heartbeat timeout (as any long call should)."""
    task = asyncio.ensure_future(work)
    timeout = activity.info().heartbeat_timeout or timedelta(seconds=10)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(0.2, timeout.total_seconds() / 2))
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()


def _client_timeout() -> float:
    limit = activity.info().start_to_close_timeout
    return max(1.0, limit.total_seconds() - 1.0) if limit else 60.0


@activity.defn(name="llm")
async def llm(request: LLMInput) -> dict[str, Any]:
    """One model call; returns the assistant message, ready to append to the conversation."""
    completion = await _heartbeating(
        _openai().chat.completions.create(
            model=MODEL,
            messages=request.messages,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            max_completion_tokens=MAX_TOKENS,
            timeout=_client_timeout(),
        )
    )
    msg = completion.choices[0].message
    message: dict[str, Any] = {"role": "assistant", "content": msg.content}
    if msg.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in msg.tool_calls
            if c.type == "function"
        ]
    return message


@activity.defn(name="tool")
async def tool(request: ToolInput) -> dict[str, Any]:
    """One tool call: POST the arguments to the sim's endpoint with the idempotency key."""
    response = await _heartbeating(
        _http().post(
            f"/tools/{request.name}",
            json=request.arguments,
            headers={
                "Idempotency-Key": request.idempotency_key,
                "X-Agent": f"{BENCH.name}/{BENCH.version}",
                "X-Principal": "bench",
            },
            timeout=_client_timeout(),
        )
    )
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{request.name} answered with no JSON object: {response.text[:200]!r}")
    return body


def tool_arguments(raw: str) -> dict[str, Any]:
    value = json.loads(raw or "{}")
    return value if isinstance(value, dict) else {}
