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

from activities.settings import get_settings
from durable_agents._routes import (
    EndpointNotAllowed,
    allowed_endpoints,
    check_endpoint,
    parse_route,
)
from durable_agents._vocab.models import AgentRun
from sim.runner import SimServer
from tests.helpers import hire, start_onboarding, wait_for_status
from workflows.agent import AgentWorkflow

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
    ts_env: WorkflowEnvironment,
    ts_worker: Any,
    task_queue: str,
    sim: SimServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = f"openai-compatible:{sim.url}/v1:onboarding"  # the sim speaks OpenAI's API
    refused = allowed = None
    monkeypatch.setenv("DURABLE_AGENTS_MODEL_ENDPOINTS", "https://llm.example.com/v1")
    get_settings.cache_clear()
    try:
        # Started as an ops tool would, past agentctl's own check.
        refused = await ts_env.client.start_workflow(
            AgentWorkflow.run,
            AgentRun(agent="onboarding", input=hire(), principal="tester", model_route=[route]),
            id=f"onboarding-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
        )
        await wait_for_status(refused, "needs_attention")
        status = await refused.query(AgentWorkflow.status)
        assert f"{sim.url}/v1 is not an allowed model endpoint" in str(status.last_error)
        assert status.usage.input_tokens == 0  # nothing was sent

        # Listed by the worker's operators: the same route works.
        monkeypatch.setenv("DURABLE_AGENTS_MODEL_ENDPOINTS", f"{sim.url}/v1")
        get_settings.cache_clear()
        allowed = await start_onboarding(ts_env.client, task_queue, route)
        await wait_for_status(allowed, "waiting_event")
        assert (await allowed.query(AgentWorkflow.status)).usage.input_tokens > 0
    finally:
        get_settings.cache_clear()
        # Left open, their timers would fire in later tests' skipped time with no worker on
        # this queue: a task nobody takes stalls the shared time-skipping clock.
        for handle in (refused, allowed):
            if handle is not None:
                await handle.terminate("test over")
