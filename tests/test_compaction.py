"""Compaction over real sim HTTP: on a context-window error, and when the conversation grows."""

from __future__ import annotations

from durable_agents._vocab.schemas import EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import approve_pending, start_onboarding, wait_for_status


async def finish(handle) -> None:  # type: ignore[no-untyped-def]
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)


async def test_context_window_error_compacts_and_retries_the_turn(
    ts_env, ts_worker, fault, task_queue, ledger
):
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")  # three turns in
    fault("model:onboarding", "context_length", times=1)
    await finish(handle)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    [step] = [e for e in await handle.query(AgentWorkflow.transcript) if e.kind == "compaction"]
    assert "context window is exceeded" in step.text
    replaced = step.data["replaced"]
    assert any(m.get("name") == "create_mailbox" for m in replaced)
    assert "ada.lovelace@acme.example" in step.data["summary"]  # the facts survive
    for action in ("create_mailbox", "order_laptop", "send_email"):
        assert ledger(handle.id, action) == 1  # nothing redone after the summary


async def test_a_growing_conversation_is_compacted_before_the_call(
    ts_env, ts_worker, task_queue, ledger
):
    handle = await start_onboarding(ts_env.client, task_queue, compact_at_tokens=400)
    await finish(handle)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    steps = [e for e in await handle.query(AgentWorkflow.transcript) if e.kind == "compaction"]
    assert steps and "tokens >" in steps[0].text
    email = [
        e.text
        for e in await handle.query(AgentWorkflow.transcript)
        if e.kind == "tool_call" and e.text.startswith("send_email")
    ]
    assert "ada.lovelace@acme.example" in email[0]
    assert [ledger(handle.id, a) for a in ("create_mailbox", "order_laptop", "send_email")] == [
        1,
        1,
        1,
    ]
