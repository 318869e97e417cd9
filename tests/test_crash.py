"""Chaos: SIGKILL the worker between steps and mid-tool-call; every effect still happens once."""

from __future__ import annotations

import asyncio

from durable_agents._vocab.schemas import EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import approve_pending, kill, start_onboarding, wait_for_ledger, wait_for_status

ACTIONS = ("create_mailbox", "order_laptop", "send_email")


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
    dev_env, fault, spawn_worker, task_queue, ledger
):
    # The laptop order commits at the sim, then the answer is held back: the worker dies
    # after the effect happened but before it learned so (the "charged twice" case).
    fault("order_laptop", "delay", times=1, seconds=5, when="after")
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
