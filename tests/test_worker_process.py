"""The worker process: connection from TEMPORAL_* variables, a clean drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from temporalio.testing import WorkflowEnvironment

from sim.runner import SimServer
from tests.helpers import start_onboarding, wait_for_status


async def test_sigterm_drains_and_exits_cleanly(
    dev_env: WorkflowEnvironment, sim: SimServer, task_queue: str
) -> None:
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
        "DURABLE_AGENTS_SIM_URL": sim.url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers"], env=env, stderr=subprocess.PIPE, text=True
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
        sys.executable, "-m", "workers", env=env, stderr=asyncio.subprocess.PIPE
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
