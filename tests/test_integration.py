"""The onboarding agent on the real dev server, the sim over HTTP, both wire formats."""

from __future__ import annotations

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.search import AGENT_NAME, AGENT_STATUS, PRINCIPAL
from tests.helpers import approve_pending, start_onboarding, wait_for_status


@pytest.mark.parametrize("route", ["sim-openai:onboarding", "sim-anthropic:onboarding"])
async def test_onboarding_end_to_end(
    route: str, dev_env: WorkflowEnvironment, dev_worker, task_queue, ledger
):
    handle = await start_onboarding(dev_env.client, task_queue, route)
    await wait_for_status(handle, "waiting_event")
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(AGENT_STATUS) == "waiting_event"
    assert (await handle.query(AgentWorkflow.status)).waiting_for == "event clearance_granted"
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "for event clearance_granted" in meta.current_details  # what the UI shows

    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    status = await handle.query(AgentWorkflow.status)
    assert status.model_route == [route]
    desc = await handle.describe()
    attrs = desc.typed_search_attributes
    assert (attrs.get(AGENT_NAME), attrs.get(AGENT_STATUS), attrs.get(PRINCIPAL)) == (
        "onboarding",
        "completed",
        "tester",
    )
    assert "onboarding: Ada Lovelace (E" in (await desc.static_summary() or "")
    for action in ("create_mailbox", "order_laptop", "send_email"):
        assert ledger(handle.id, action) == 1
    emails = [
        e
        for e in await handle.query(AgentWorkflow.transcript)
        if e.kind == "tool_call" and e.text.startswith("send_email")
    ]
    assert "ada.lovelace@acme.example" in emails[0].text  # the model wrote the mailbox in


async def test_activity_summaries_name_each_step(
    dev_env: WorkflowEnvironment, dev_worker, task_queue
):
    handle = await start_onboarding(dev_env.client, task_queue)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    await handle.result()
    summaries = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            summaries.append(
                dev_env.client.data_converter.payload_converter.from_payload(
                    event.user_metadata.summary, str
                )
            )
    assert summaries[0] == "LLM turn 1 · onboarding"
    assert "tool create_mailbox · turn 1" in summaries
    assert "tool send_email · turn 4" in summaries
