"""Budgets: a run stops at its limit with a partial result, or a person extends it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from durable_agents._vocab.models import AgentRun, BudgetOverride
from starters import ops
from tests.helpers import start_onboarding, wait_for_status
from tests.people import decide
from workflows.agent import AgentWorkflow


async def test_a_run_stops_at_its_token_budget(ts_env, ts_worker, task_queue, ledger):
    handle = await start_onboarding(
        ts_env.client, task_queue, budget=BudgetOverride(max_input_tokens=1500)
    )
    result = await handle.result()

    assert result.outcome == "budget_exhausted"
    assert "input tokens of 1500" in result.answer
    status = await handle.query(AgentWorkflow.status)
    assert status.usage.input_tokens >= 1500
    assert status.cost_usd > Decimal(0)  # priced from the table: the sim's models cost too
    assert ledger(handle.id, "create_mailbox") == 1  # what was done stays done
    assert ledger(handle.id, "send_email") == 0


async def test_a_cost_budget_counts_in_dollars(ts_env, ts_worker, task_queue):
    handle = await start_onboarding(
        ts_env.client, task_queue, budget=BudgetOverride(max_cost_usd=Decimal("0.001"))
    )
    result = await handle.result()
    assert result.outcome == "budget_exhausted" and "USD" in result.answer


async def test_an_approved_extension_lets_the_run_go_on(ts_env, ts_worker, task_queue):
    run = AgentRun(
        agent="bench",
        input={"turns": 4},
        principal="tester",
        budget=BudgetOverride(max_input_tokens=400, on_exhausted="ask"),
    )
    handle = await ops.start_run(ts_env.client, run, task_queue=task_queue)
    await wait_for_status(handle, "waiting_approval")
    [ask] = (await handle.query(AgentWorkflow.status)).approvals
    assert ask.tool == "extend_budget" and "budget reached" in ask.rule
    assert ask.groups == ["operators"]

    # Poll with queries only: awaiting the result would let the server skip a day of time.
    extensions = 0
    while (status := await handle.query(AgentWorkflow.status)).status not in (
        "completed",
        "failed",
    ):
        if status.status == "waiting_approval":
            await decide(handle, "olga", True)
            extensions += 1
        assert extensions < 10
        await asyncio.sleep(0.1)
    assert (await handle.result()).outcome == "completed"
    assert extensions >= 1


async def test_a_deadline_stops_the_run_at_its_next_turn(ts_env, ts_worker, task_queue, ledger):
    from datetime import timedelta

    from durable_agents._vocab.models import EventSignal

    handle = await start_onboarding(
        ts_env.client, task_queue, budget=BudgetOverride(deadline_hours=1)
    )
    await wait_for_status(handle, "waiting_event")
    await ts_env.sleep(timedelta(hours=2))
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    result = await handle.result()
    assert result.outcome == "budget_exhausted" and "deadline 1:00:00" in result.answer
    assert ledger(handle.id, "send_email") == 0
