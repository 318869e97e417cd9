"""llama.cpp's server-sent events reach `agentctl watch` as the model's words, as they come."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents.testing import AgentEnvironment
from durable_agents.workflows.agent import AgentWorkflow
from tests.model.conftest import AGENTCTL
from tests.model.tap import WireTap

pytestmark = pytest.mark.timeout(300)


async def test_the_servers_stream_reaches_agentctl_watch(
    agents: AgentEnvironment, tap: WireTap, dev_env: WorkflowEnvironment
) -> None:
    handle = await agents.start("narrator", {"topic": "a lighthouse keeper and a lost whale"},
                                model_route=[tap.route])  # fmt: skip
    address = dev_env.client.service_client.config.target_host
    watch = await asyncio.create_subprocess_exec(
        AGENTCTL, "watch", handle.id, "--json", "--address", address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(watch.communicate(), 180)
    assert watch.returncode == 0, err.decode()
    result = await handle.result()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    pieces = [r["text"] for r in rows if r["kind"] == "text"]

    # What the server streamed: many chunks, cut at the spec's 48 tokens (finish_reason
    # "length": the run still completes with the words it had).
    [reply] = tap.completions()
    assert reply["chunks"] > 10
    assert reply["choices"][0]["finish_reason"] == "length"
    words = reply["choices"][0]["message"]["content"]
    assert result.outcome == "completed" and result.answer == words
    # The watcher saw the words as text deltas before the step with the whole reply.
    assert pieces and words.startswith("".join(pieces)), (pieces, words)
    first_text = next(i for i, r in enumerate(rows) if r["kind"] == "text")
    step = next(i for i, r in enumerate(rows) if r["kind"] == "assistant")
    assert first_text < step and rows[step]["text"] == words

    # llama-cpp-python sends no usage with a stream: the run says so, counting nothing.
    status = await handle.query(AgentWorkflow.status)
    assert status.usage.input_tokens == 0 and reply["usage"] is None
    transcript = await handle.query(AgentWorkflow.transcript)
    assert any("sent no token usage" in e.text for e in transcript if e.kind == "note")
