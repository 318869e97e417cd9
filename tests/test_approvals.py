"""Approval gates on the time-skipping server: who may decide, escalation, expiry, signals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import Decision, EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import start_onboarding, wait_for_status


async def wait_for_refusals(handle: WorkflowHandle[Any, Any], count: int) -> None:
    """Signals with proofs are checked by a local activity: wait until `count` are refused."""
    for _ in range(200):
        if len((await handle.query(AgentWorkflow.status)).refused) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} refusals recorded")


async def at_the_gate(
    env: WorkflowEnvironment, task_queue: str, principal: str = "tester"
) -> WorkflowHandle[Any, Any]:
    handle = await start_onboarding(env.client, task_queue, principal=principal)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval")
    return handle


async def updates_in_history(handle: WorkflowHandle[Any, Any]) -> int:
    count = 0
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            count += 1
    return count


async def refused(handle: WorkflowHandle[Any, Any], decision: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decision
    return str(info.value.cause)


async def test_the_record_says_what_waits_and_for_whom(ts_env, ts_worker, task_queue, people):
    handle = await at_the_gate(ts_env, task_queue)
    status = await handle.query(AgentWorkflow.status)
    [approval] = status.approvals
    assert (approval.id, approval.tool, approval.state) == ("apr-1", "send_email", "pending")
    assert approval.groups == ["hr-managers"]
    assert approval.arguments["to"] == "ada@lovelace.example"
    assert len(approval.digest) == 16
    assert approval.expires_at - approval.requested_at == timedelta(days=3)
    assert status.waiting_for and "approval apr-1 of send_email(" in status.waiting_for
    kinds = [e.kind for e in await handle.query(AgentWorkflow.transcript)]
    assert "approval" in kinds
    # Leave nothing running: an orphaned run's timers stall the time-skipping server.
    await people.decide(handle, "hana", True)
    await handle.result()


async def test_validator_refuses_before_history(
    ts_env, ts_worker, task_queue, ledger, people, fault
):
    handle = await at_the_gate(ts_env, task_queue)
    # The email takes 3 s once approved: the repeat and the late decision below reach a run
    # that is still going (a run that ended takes no update at all).
    fault("send_email", "delay", times=1, seconds=3, when="before")

    stranger = await refused(handle, people.decide(handle, "mallory", True))
    unknown = await refused(handle, people.decide(handle, "hana", True, approval_id="apr-9"))
    stale = await refused(handle, people.decide(handle, "hana", True, digest="0" * 16))
    assert "'mallory' may not decide approval apr-1" in stranger
    assert "no approval 'apr-9'" in unknown and "pending: apr-1" in unknown
    assert "digest" in stale
    assert await updates_in_history(handle) == 0

    first = await people.decide(handle, "hana", True)
    again = await people.decide(handle, "hana", True)
    assert again == first  # idempotent: the first decision stands
    second = await refused(handle, people.decide(handle, "hugo", False))
    assert "already approved by hana" in second
    assert await updates_in_history(handle) == 2

    result = await handle.result()
    assert result.outcome == "completed"
    assert ledger(handle.id, "send_email") == 1


async def test_four_eyes_the_runs_own_principal_may_not_approve(
    ts_env, ts_worker, task_queue, people
):
    handle = await at_the_gate(ts_env, task_queue, principal="hana")  # hana is an HR manager
    assert "may not approve its own request" in await refused(
        handle, people.decide(handle, "hana", True)
    )
    await people.decide(handle, "hugo", True)
    assert (await handle.result()).outcome == "completed"


async def test_a_refused_signal_changes_nothing(dev_env, dev_worker, task_queue, ledger, people):
    # On the dev server: the time-skipping server mis-serves a query on a closed run whose
    # history has signals (a full Replayer run of the same history passes).
    handle = await at_the_gate(dev_env, task_queue)
    before = await handle.query(AgentWorkflow.status)

    await people.decide(handle, "mallory", True, signal="approve")
    await people.decide(handle, "hana", False, approval_id="apr-7", signal="reject")
    # Without a proof (the claimed name alone), or a name that is not the proof's: refused.
    await handle.signal(AgentWorkflow.approve, Decision(approve=True, approver="hana"))
    await people.decide(handle, "hugo", True, signal="approve", approver="hana")
    await wait_for_refusals(handle, 4)
    after = await handle.query(AgentWorkflow.status)
    assert after.approvals == before.approvals
    assert after.status == "waiting_approval"

    await people.decide(handle, "hugo", False, "too casual", signal="reject")
    result = await handle.result()
    assert ledger(handle.id, "send_email") == 0
    await handle.fetch_history()
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert (approval.state, approval.decided_by, approval.reason) == (
        "rejected",
        "hugo",
        "too casual",
    )
    assert "hugo" in result.answer and "too casual" in result.answer  # the model was told


async def test_escalates_after_a_day_and_approval_on_day_two_completes(
    ts_env, ts_worker, task_queue, ledger, people
):
    handle = await at_the_gate(ts_env, task_queue)
    assert "may not decide" in await refused(handle, people.decide(handle, "olga", True))

    await ts_env.sleep(timedelta(hours=25))
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert [e.groups for e in approval.escalations] == [["operators"]]
    waited = approval.escalations[0].at - approval.requested_at
    assert abs(waited - timedelta(hours=24)) < timedelta(seconds=1)

    await ts_env.sleep(timedelta(hours=23))  # day 2
    decided = await people.decide(handle, "olga", True)
    assert decided.state == "approved"
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "send_email") == 1


async def test_expires_after_three_days_and_the_model_is_told(
    ts_env, ts_worker, task_queue, ledger
):
    handle = await at_the_gate(ts_env, task_queue)
    await ts_env.sleep(timedelta(days=2, hours=23))
    assert (await handle.query(AgentWorkflow.status)).status == "waiting_approval"

    result = await handle.result()  # time skips to the expiry

    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert approval.state == "expired"
    assert ledger(handle.id, "send_email") == 0
    assert "expired" in result.answer
