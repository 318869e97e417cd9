"""Decisions sent as signals while no worker runs: the server keeps them, a new worker applies them.

An ops tool that can only signal may approve at night, when every worker is down (a deploy, a
crash). The signal lands in the run's history at once; the checks run when a worker replays it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import kill, start_onboarding, wait_for_status
from tests.people import decide


async def at_the_gate_then_no_worker(
    env: WorkflowEnvironment, spawn_worker: Any, task_queue: str
) -> tuple[WorkflowHandle[Any, Any], str]:
    """An onboarding run waiting for HR's approval of the welcome email, its worker SIGKILLed;
    and the digest of the email, as the approver read it before."""
    worker = spawn_worker()
    handle = await start_onboarding(env.client, task_queue)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval", timeout=30)
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    kill(worker)
    return handle, approval.digest


async def signals_in_history(handle: WorkflowHandle[Any, Any], name: str) -> int:
    count = 0
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            count += event.workflow_execution_signaled_event_attributes.signal_name == name
    return count


async def test_approve_signal_sent_with_no_worker_is_applied_when_one_starts(
    dev_env, spawn_worker, task_queue, ledger
):
    handle, read = await at_the_gate_then_no_worker(dev_env, spawn_worker, task_queue)

    await decide(
        handle, "hana", True, "checked", approval_id="apr-1", digest=read, signal="approve"
    )
    assert await signals_in_history(handle, "approve") == 1  # durable before any worker saw it
    await asyncio.sleep(0.5)
    assert ledger(handle.id, "send_email") == 0  # nothing happens without a worker

    spawn_worker()
    result = await asyncio.wait_for(handle.result(), 45)

    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "send_email") == 1
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert (approval.state, approval.decided_by, approval.reason) == (
        "approved",
        "hana",
        "checked",
    )


async def test_refused_reject_signal_sent_with_no_worker_changes_nothing(
    dev_env, spawn_worker, task_queue, ledger
):
    handle, read = await at_the_gate_then_no_worker(dev_env, spawn_worker, task_queue)

    # mallory is in no approver group: the signal is kept, but the run refuses it on replay.
    await decide(handle, "mallory", False, "no", approval_id="apr-1", digest=read, signal="reject")
    assert await signals_in_history(handle, "reject") == 1

    spawn_worker()
    # The query is answered after the new worker has run the task that carries the signal.
    status = await asyncio.wait_for(handle.query(AgentWorkflow.status), 30)
    assert status.status == "waiting_approval"
    [approval] = status.approvals
    assert (approval.state, approval.decided_by, approval.reason) == ("pending", None, "")
    assert ledger(handle.id, "send_email") == 0
    notes = [e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "approval"]
    assert not any("rejected" in n for n in notes), notes

    # The gate still works for someone allowed; the run ends normally.
    await decide(handle, "hugo", True)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "send_email") == 1
