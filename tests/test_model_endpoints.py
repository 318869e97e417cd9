"""Where a conversation may go: an openai-compatible route's base URL must be on the worker's
allowlist of model endpoints (DURABLE_AGENTS_MODEL_ENDPOINTS; the worker's own machine by
default), or `agentctl run` refuses it before anything starts and the worker parks the run with
the reason, having sent nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents._routes import (
    EndpointNotAllowed,
    ModelProvider,
    allowed_endpoints,
    check_endpoint,
    checked_route,
    parse_route,
)
from durable_agents._vocab.schemas import AgentRun
from durable_agents.settings import Settings
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from sim.runner import SimServer
from tests.helpers import hire, start_onboarding, wait_for_status

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


@pytest.mark.parametrize(
    ("allowlist", "route", "ok"),
    [
        (None, "http://127.0.0.1:11434/v1", True),
        (None, "http://localhost:8000/v1", True),
        (None, "http://127.0.0.1.evil.example/v1", False),
        (None, "https://10.0.0.1/v1", False),
        ("https://llm.example.com/v1", "https://llm.example.com/v1", True),
        ("https://llm.example.com/v1", "https://llm.example.com/v1/deep", True),
        ("https://llm.example.com/v1", "https://llm.example.com/v10", False),
        ("https://llm.example.com/v1", "http://llm.example.com/v1", False),
        ("https://llm.example.com:8443/v1", "https://llm.example.com:9443/v1", False),
        ("https://llm.example.com/v1", "http://127.0.0.1:11434/v1", False),  # listed: only those
    ],
)
def test_the_allowlist(allowlist: str | None, route: str, ok: bool) -> None:
    parsed = parse_route(f"openai-compatible:{route}:some-model")
    if ok:
        check_endpoint(parsed, allowed_endpoints(allowlist))
    else:
        with pytest.raises(EndpointNotAllowed, match="is not an allowed model endpoint"):
            check_endpoint(parsed, allowed_endpoints(allowlist))


def test_agentctl_refuses_a_route_off_the_allowlist_before_anything_starts() -> None:
    # Nothing listens at this address: a refusal that came after connecting would say so.
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    out = subprocess.run(
        [AGENTCTL, "run", "onboarding", "--as", "tester", "--input", json.dumps(hire()),
         "--model", "openai-compatible:https://203.0.113.7/v1:gpt-x"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "https://203.0.113.7/v1 is not an allowed model endpoint" in line, line
    assert "DURABLE_AGENTS_MODEL_ENDPOINTS" in line


async def test_the_worker_parks_a_run_whose_route_is_off_its_allowlist(
    ts_env: WorkflowEnvironment, task_queue: str, sim: SimServer
) -> None:
    route = f"openai-compatible:{sim.url}/v1:onboarding"  # the sim speaks OpenAI's API
    refused = allowed = None
    strict = Settings.from_env(model_endpoints="https://llm.example.com/v1")
    listed = Settings.from_env(model_endpoints=f"{sim.url}/v1")
    try:
        async with build_worker(ts_env.client, task_queue, settings=strict):
            # Started as an ops tool would, past agentctl's own check.
            refused = await start(ts_env, task_queue, route)
            await wait_for_status(refused, "needs_attention")
            status = await refused.query(AgentWorkflow.status)
            assert f"{sim.url}/v1 is not an allowed model endpoint" in str(status.last_error)
            assert status.usage.input_tokens == 0  # nothing was sent

        # Listed by the worker's operators: the same route works.
        async with build_worker(ts_env.client, task_queue, settings=listed):
            allowed = await start_onboarding(ts_env.client, task_queue, route)
            await wait_for_status(allowed, "waiting_event")
            assert (await allowed.query(AgentWorkflow.status)).usage.input_tokens > 0
    finally:
        await end(refused, allowed)


async def test_a_named_provider_is_configuration(
    ts_env: WorkflowEnvironment, task_queue: str, sim: SimServer
) -> None:
    """`gateway:<model>` reaches the server the worker's operators named; a name nobody
    configured parks the run, saying where providers are named; nothing is sent."""
    gateway = ModelProvider(wire="openai", base_url=f"{sim.url}/v1")
    settings = Settings.from_env(model_providers={"gateway": gateway})
    reached = unknown = None
    try:
        async with build_worker(ts_env.client, task_queue, settings=settings):
            reached = await start(ts_env, task_queue, "gateway:onboarding")
            unknown = await start(ts_env, task_queue, "nowhere:onboarding")
            await wait_for_status(reached, "waiting_event")
            await wait_for_status(unknown, "needs_attention")
            status = await unknown.query(AgentWorkflow.status)
        assert "no model provider 'nowhere' here (named ones: gateway" in str(status.last_error)
        assert "DURABLE_AGENTS_MODEL_PROVIDERS" in str(status.last_error)
        assert status.usage.input_tokens == 0
    finally:
        await end(reached, unknown)


def test_agentctl_refuses_a_provider_it_does_not_know() -> None:
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    out = subprocess.run(
        [AGENTCTL, "run", "onboarding", "--as", "tester", "--input", json.dumps(hire()),
         "--model", "nowhere:gpt-x"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "no model provider 'nowhere' here" in line, line


def test_a_plugins_provider_must_be_an_allowed_endpoint() -> None:
    plugin = {"corp": ModelProvider(wire="anthropic", base_url="https://llm.corp.example/api")}
    with pytest.raises(EndpointNotAllowed, match="is not an allowed model endpoint"):
        checked_route("corp:claude", plugin, {}, allowed_endpoints(None))
    # The same server named by the worker's operators is theirs to trust.
    route = checked_route("corp:claude", {}, plugin, allowed_endpoints(None))
    assert (route.wire_format, route.base_url) == ("anthropic", "https://llm.corp.example/api")


async def start(ts_env: WorkflowEnvironment, task_queue: str, route: str) -> Any:
    return await ts_env.client.start_workflow(
        AgentWorkflow.run,
        AgentRun(agent="onboarding", input=hire(), principal="tester", model_route=[route]),
        id=f"onboarding-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
    )


async def end(*handles: Any) -> None:
    # Left open, their timers would fire in later tests' skipped time with no worker on this
    # queue: a task nobody takes stalls the shared time-skipping clock.
    for handle in handles:
        if handle is not None:
            await handle.terminate("test over")
