"""The onboarding agent's days-long wait, on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import approve_pending, start_onboarding, wait_for_status


async def test_waits_five_days_for_clearance_then_completes(
    ts_env: WorkflowEnvironment, ts_worker, task_queue, ledger
):
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    await ts_env.sleep(timedelta(days=5))
    status = await handle.query(AgentWorkflow.status)
    assert status.status == "waiting_event"
    assert status.waiting_for == "event clearance_granted"
    assert ledger(handle.id, "send_email") == 0

    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    approval = await approve_pending(handle)
    result = await handle.result()

    assert (approval.tool, approval.state, approval.decided_by) == (
        "send_email",
        "approved",
        "hana",
    )
    assert result.outcome == "completed"
    assert "clearance" in result.answer.lower()
    tools = [
        e.text.split("(")[0]
        for e in await handle.query(AgentWorkflow.transcript)
        if e.kind == "tool_call"
    ]
    assert tools == ["create_mailbox", "order_laptop", "wait_for_event", "send_email"]
    waited = [
        e
        for e in await handle.query(AgentWorkflow.transcript)
        if e.kind == "tool_result" and e.text.startswith("wait_for_event")
    ]
    assert '"waited_hours": 120' in waited[0].text
    for action in ("create_mailbox", "order_laptop", "send_email"):
        assert ledger(handle.id, action) == 1


async def test_no_clearance_times_out_after_the_spec_limit(
    ts_env: WorkflowEnvironment, ts_worker, task_queue, ledger
):
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    await ts_env.sleep(timedelta(days=6, hours=23))
    assert (await handle.query(AgentWorkflow.status)).status == "waiting_event"

    result = await handle.result()  # the server skips the last hours to the 7-day limit

    assert result.outcome == "timed_out"
    assert "168 h" in result.answer
    assert ledger(handle.id, "send_email") == 0
    assert (await handle.query(AgentWorkflow.status)).status == "timed_out"


async def test_event_sent_before_the_wait_is_not_lost(
    ts_env: WorkflowEnvironment, ts_worker, task_queue, ledger
):
    handle = await start_onboarding(ts_env.client, task_queue)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    result = await handle.result()
    assert result.outcome == "completed"
    assert ledger(handle.id, "send_email") == 1
