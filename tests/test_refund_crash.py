"""Chaos on the refund saga: SIGKILL the worker after the approval, while the refund is in flight.

The sim commits the refund, then holds its answer back for a few seconds: the worker is killed
after money left but before it learned so. A new worker retries the call with the same
idempotency key, and the sim answers with the refund it already made.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.client import WorkflowHandle

from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import kill, wait_for_ledger, wait_for_status
from tests.people import decide
from tests.test_refund import seed, start_refund, ticket


async def refund_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """How many attempts the `issue_refund` tool activity took (from the run's history)."""
    scheduled: set[int] = set()
    attempts = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            payloads = event.activity_task_scheduled_event_attributes.input.payloads
            if payloads and json.loads(payloads[0].data).get("tool") == "issue_refund":
                scheduled.add(event.event_id)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                attempts = max(attempts, started.attempt)
    return attempts


async def test_sigkill_between_approval_and_refund_issues_exactly_one(
    dev_env, sim, fault, spawn_worker, task_queue, ledger
):
    order = seed(sim.url, "250.00")
    first = spawn_worker()
    handle = await start_refund(dev_env.client, task_queue, order)
    await wait_for_status(handle, "waiting_approval", timeout=30)
    assert ledger(handle.id, "place_hold") == 1 and ledger(handle.id, "issue_refund") == 0

    # The next refund commits at the sim, then its answer is held back for 5 s.
    fault("issue_refund", "delay", times=1, seconds=5, when="after")
    approval = await decide(handle, "sam", True, "damaged in transit")
    assert (approval.state, approval.decided_by) == ("approved", "sam")
    await wait_for_ledger(ledger, handle.id, "issue_refund")
    kill(first)  # money left; the worker never hears back

    spawn_worker()
    result = await asyncio.wait_for(handle.result(), 45)

    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "issue_refund") == 1
    assert ledger(handle.id, "place_hold") == 1
    assert ledger(handle.id, "release_hold") == 0
    assert ticket(sim.url, order["ticket_id"])["status"] == "resolved"
    # The kill landed in the window: the new worker ran the refund call a second time.
    assert await refund_attempts(handle) >= 2
    [decided] = (await handle.query(AgentWorkflow.status)).approvals
    assert (decided.state, decided.decided_by) == ("approved", "sam")
