"""Chaos: SIGKILL the worker between steps and mid-tool-call; every effect still happens once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from sim.runner import SimServer
from tests.helpers import approve_pending, start_onboarding, wait_for_status
from workflows.agent import AgentWorkflow
from workflows.models import EventSignal

ACTIONS = ("create_mailbox", "order_laptop", "send_email")


@pytest.fixture
def spawn_worker(dev_env: WorkflowEnvironment, sim: SimServer, task_queue: str) -> Iterator:  # type: ignore[type-arg]
    """Start worker processes on this test's queue; kill any left at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
        "DURABLE_AGENTS_SIM_URL": sim.url,
    }

    def spawn() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def wait_for_ledger(ledger, run_id: str, action: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while ledger(run_id, action) == 0:
        assert time.monotonic() < deadline, f"{action} never reached the sim"
        await asyncio.sleep(0.05)


async def test_sigkill_while_waiting_between_steps(dev_env, spawn_worker, task_queue, ledger):
    first = spawn_worker()
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event", timeout=60)
    kill(first)

    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    spawn_worker()
    await approve_pending(handle, timeout=60)
    result = await asyncio.wait_for(handle.result(), 90)

    assert result.outcome == "completed"
    assert [ledger(handle.id, a) for a in ACTIONS] == [1, 1, 1]


async def test_sigkill_while_a_tool_call_is_in_flight(
    dev_env, sim, spawn_worker, task_queue, ledger
):
    # The laptop order commits at the sim, then the answer is held back: the worker dies
    # after the effect happened but before it learned so (the "charged twice" case).
    httpx.post(
        f"{sim.url}/admin/faults",
        json={
            "target": "order_laptop",
            "fault": "delay",
            "params": {"seconds": 5, "when": "after"},
            "times": 1,
        },
    ).raise_for_status()
    first = spawn_worker()
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_ledger(ledger, handle.id, "order_laptop")
    kill(first)

    spawn_worker()
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle, timeout=60)
    result = await asyncio.wait_for(handle.result(), 90)

    assert result.outcome == "completed"
    assert [ledger(handle.id, a) for a in ACTIONS] == [1, 1, 1]
    attempts = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            attempts = max(attempts, event.activity_task_started_event_attributes.attempt)
    assert attempts >= 2, "the laptop order should have been retried by the new worker"
