"""The worker process: connection from TEMPORAL_* variables, settings that do not parse, a clean
drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from durable_agents.settings import Settings, _explain
from durable_agents.workers.main import build_worker
from sim.runner import SimServer
from sim.world import world
from tests.helpers import start_onboarding, wait_for_status


async def test_sigterm_drains_and_exits_cleanly(
    dev_env: WorkflowEnvironment, sim: SimServer, task_queue: str
) -> None:
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
        **world(sim.url),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable_agents.workers"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        handle = await start_onboarding(dev_env.client, task_queue)
        await wait_for_status(handle, "waiting_event", timeout=60)  # the worker is working
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        proc.kill()
    log = proc.stderr.read() if proc.stderr else ""
    assert code == 0, log
    assert "shutting down" in log and "worker stopped" in log
    assert f"task queue '{task_queue}'" in log


async def test_worker_says_where_it_could_not_connect(task_queue: str) -> None:
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1", "DURABLE_AGENTS_CONNECT_WAIT": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable_agents.workers", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    assert "127.0.0.1:1" in err.decode() and "agentctl server" in err.decode()


def test_worker_leaves_heavy_libraries_until_first_use() -> None:
    """A worker imports the MCP SDK, authlib, redis, the provider SDKs and (without encryption
    keys) cryptography on first use, not at start-up: they were most of an idle worker's
    memory (README, "What waiting costs")."""
    heavy = ("mcp", "authlib", "joserfc", "redis", "openai", "anthropic", "cryptography")
    probe = (
        "import sys, workers.main, workers.plugin, activities.mcp, activities.identity, "
        "activities.store; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert loaded == "", f"imported at start-up: {loaded}"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DURABLE_AGENTS_MAX_CACHED_WORKFLOWS", "lots", "valid integer"),
        ("DURABLE_AGENTS_MAX_CACHED_WORKFLOWS", "-1", "greater than or equal to 0"),
        ("DURABLE_AGENTS_STICKY_TIMEOUT_S", "0", "greater than 0"),
        ("DURABLE_AGENTS_CONNECT_WAIT", "soon", "valid number"),
    ],
)
async def test_worker_refuses_a_setting_that_does_not_parse(
    variable: str, value: str, says: str
) -> None:
    """One line that names the variable, what it held and what fits; no traceback, exit 1."""
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1", variable: value}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable_agents.workers", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 1, text
    assert f"{variable}={value!r}" in text and says in text, text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text


def test_a_secret_that_does_not_parse_is_not_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(OPENAI_API_KEY=12345678)  # type: ignore[call-arg]
    said = _explain(caught.value)
    assert said.startswith("OPENAI_API_KEY=(not shown): ") and "12345678" not in said


async def test_worker_settings_reach_the_sdk(
    dev_env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bounds a worker's memory and how long a killed worker's runs wait (README, "What
    waiting costs"); blank is the default."""
    monkeypatch.setenv("DURABLE_AGENTS_MAX_CACHED_WORKFLOWS", "250")
    monkeypatch.setenv("DURABLE_AGENTS_STICKY_TIMEOUT_S", "2.5")
    config = build_worker(dev_env.client, task_queue).config()
    assert config.get("max_cached_workflows") == 250
    assert config.get("sticky_queue_schedule_to_start_timeout") == timedelta(seconds=2.5)
    monkeypatch.setenv("DURABLE_AGENTS_MAX_CACHED_WORKFLOWS", " ")
    monkeypatch.setenv("DURABLE_AGENTS_STICKY_TIMEOUT_S", "")
    config = build_worker(dev_env.client, f"{task_queue}-defaults").config()
    assert config.get("max_cached_workflows") == 1000  # the SDK's
    assert config.get("sticky_queue_schedule_to_start_timeout") == timedelta(seconds=5)


async def test_worker_check_replays_the_runs_of_its_task_queue(
    dev_env: WorkflowEnvironment, dev_worker: object, sim: SimServer, task_queue: str
) -> None:
    """`agentctl worker --check` (no deployment: nothing recorded on a server) replays a run
    waiting on its task queue with this installation's code, reads its state, and exits 0."""
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event", timeout=60)
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        **world(sim.url),
    }
    env.pop("DURABLE_AGENTS_DEPLOYMENT", None)
    agentctl = str(Path(sys.executable).parent / "agentctl")
    out = await asyncio.to_thread(
        subprocess.run,
        [agentctl, "worker", "--check", "--task-queue", task_queue],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert ": passed: replayed 1 open and " in out.stdout, out.stdout
    assert "read 1 open runs' state with this build's models" in out.stdout
    await handle.cancel()
