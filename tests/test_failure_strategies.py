"""Failure strategies over real sim HTTP: fall back along the route, park, resume, abort."""

from __future__ import annotations

import pytest

from durable_agents._vocab.schemas import AgentRun, EventSignal
from durable_agents.client import start_run
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import approve_pending, start_onboarding, wait_for_status
from tests.people import operator
from tests.test_cli import address, cli, error, ok


async def test_unavailable_provider_falls_back_to_the_next_model(
    ts_env, ts_worker, task_queue, fault, ledger
):
    fault("model:onboarding", "unavailable", times=2)  # both attempts of the first turn
    handle = await start_onboarding(
        ts_env.client,
        task_queue,
        ["sim-openai:onboarding", "sim-anthropic:onboarding-backup"],
        llm_attempts=2,
    )
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    result = await handle.result()

    assert result.outcome == "completed"
    notes = [e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "error"]
    assert any(
        "ProviderUnavailable from sim-openai:onboarding: falling back to "
        "sim-anthropic:onboarding-backup" in n
        for n in notes
    )
    assert ledger(handle.id, "create_mailbox") == 1


async def test_auth_failure_parks_with_reason_and_resume_goes_on(
    ts_env, ts_worker, task_queue, fault, ledger
):
    fault("model:onboarding", "auth", times=1)
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "AuthenticationFailed" in (status.last_error or "")
    assert status.turn == 1 and status.usage.input_tokens == 0  # context intact, nothing lost

    await handle.signal(
        AgentWorkflow.resume, operator(handle.id, "resume", "olga")
    )  # the operator fixed the key
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "send_email") == 1


async def test_abort_ends_a_parked_run(ts_env, ts_worker, task_queue, fault, ledger):
    fault("model:onboarding", "context_length", times=1)
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "needs_attention")
    assert "ContextWindowExceeded" in ((await handle.query(AgentWorkflow.status)).last_error or "")

    await handle.signal(AgentWorkflow.abort, operator(handle.id, "abort", "olga", "wrong hire"))
    result = await handle.result()

    assert result.outcome == "aborted"
    assert "wrong hire (by olga)" in result.answer
    assert ledger(handle.id, "create_mailbox") == 0
    assert (await handle.query(AgentWorkflow.status)).status == "aborted"


async def test_resume_is_ignored_when_nothing_is_parked(ts_env, ts_worker, task_queue):
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    await handle.signal(AgentWorkflow.resume, operator(handle.id, "resume", "olga"))
    await handle.signal(AgentWorkflow.abort, operator(handle.id, "abort", "olga", "no"))
    assert (await handle.query(AgentWorkflow.status)).status == "waiting_event"
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    assert (await handle.result()).outcome == "completed"


async def test_operator_commands_on_a_parked_run(dev_env, dev_worker, task_queue, fault, ledger):
    fault("model:onboarding", "auth", times=2)
    addr = address(dev_env)
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "needs_attention")
    shown = ok(await cli("status", handle.id, "--address", addr)).stdout
    assert "needs_attention" in shown and "AuthenticationFailed" in shown

    ok(await cli("retry-turn", handle.id, "--as", "olga", "--address", addr))  # 2nd auth fault
    await wait_for_status(handle, "needs_attention")
    said = ok(
        await cli("abort", handle.id, "--reason", "key revoked", "--as", "olga", "--address", addr)
    ).stdout
    assert "aborted" in said
    result = await handle.result()
    assert (result.outcome, ledger(handle.id, "create_mailbox")) == ("aborted", 0)
    assert "key revoked (by olga)" in result.answer
    refused = error(await cli("resume", handle.id, "--as", "olga", "--address", addr))
    assert "has finished" in refused or "does not need attention" in refused


async def test_a_rate_limit_waits_the_retry_after(ts_env, ts_worker, task_queue, fault):
    fault("model:onboarding", "rate_limit", times=1, retry_after=1.5)
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    first = None
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            first = event
            break
    assert first is not None
    started = first.activity_task_started_event_attributes
    assert started.attempt == 2
    async for event in handle.fetch_history_events():
        if event.event_id == started.scheduled_event_id:
            waited = first.event_time.ToDatetime() - event.event_time.ToDatetime()
            assert waited.total_seconds() >= 1.5  # the server's Retry-After, not our backoff
            break
    await handle.terminate("done")


@pytest.mark.parametrize("route", ["sim-openai:onboarding", "sim-anthropic:onboarding"])
async def test_a_malformed_reply_gets_a_repair_turn(
    ts_env, ts_worker, task_queue, fault, ledger, route
):
    # Streamed in both wire formats: a cut-off tool input is caught, never read leniently.
    fault("model:onboarding", "malformed_tool_json", times=1)
    handle = await start_onboarding(ts_env.client, task_queue, route)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    assert (await handle.result()).outcome == "completed"
    notes = [e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "error"]
    assert any("asking for a repair" in n and "not valid JSON" in n for n in notes)
    assert ledger(handle.id, "create_mailbox") == 1


async def test_a_looping_agent_is_stopped_and_parked(ts_env, ts_worker, task_queue):
    run = AgentRun(agent="bench", input={"turns": 50}, model_route=["sim-openai:looper"])
    handle = await start_run(ts_env.client, run, task_queue=task_queue)
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "the same echo call was made 3 times" in (status.last_error or "")
    assert status.turn == 3

    await handle.signal(
        AgentWorkflow.resume, operator(handle.id, "resume", "olga")
    )  # still looping: stopped again after 3 more
    await wait_for_status(handle, "running")
    await wait_for_status(handle, "needs_attention")
    assert (await handle.query(AgentWorkflow.status)).turn == 6
    await handle.signal(
        AgentWorkflow.abort, operator(handle.id, "abort", "olga", "stuck in a loop")
    )
    assert (await handle.result()).outcome == "aborted"


async def test_a_tool_answering_outside_its_contract_parks_until_fixed(
    ts_env, ts_worker, task_queue, fault, ledger
):
    fault("company:create_mailbox", "off_contract", times=1)
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "ToolContractViolation" in (status.last_error or "")
    assert "create_mailbox answered outside its contract" in (status.last_error or "")

    # The other side fixed its deploy: resume retries the same call, under the same key.
    await handle.signal(AgentWorkflow.resume, operator(handle.id, "resume", "olga"))
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await approve_pending(handle)
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "create_mailbox") == 1
