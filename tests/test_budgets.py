"""Budgets: a run stops at its limit with a partial result, or a person extends it."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import AgentResult, AgentRun, BudgetOverride, EventSignal
from durable_agents.client import start_run
from durable_agents.starters import render
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.spending import FIRST_START_PATCH
from tests.helpers import approve_pending, chain_histories, start_onboarding, wait_for_status
from tests.people import decide
from tests.test_history import carried_runs
from tests.test_replay import load, markers, replayer

# A chain begun before FIRST_START_PATCH, recorded by that code (tests/record_histories.py).
BEFORE = (
    Path(__file__).parent
    / "histories"
    / "0.3.0"
    / "reader_deadline_before_deadline_from_first_start_run*.json"
)


async def test_a_run_stops_at_its_token_budget(ts_env, ts_worker, task_queue, ledger):
    handle = await start_onboarding(
        ts_env.client, task_queue, budget=BudgetOverride(max_input_tokens=1500)
    )
    result = await handle.result()

    assert result.outcome == "budget_exhausted"
    assert result.answer.startswith("stopped at the budget (")
    assert "input tokens of 1500)" in result.answer and "turn budget" not in result.answer
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
    # The answer names the limit that stopped the run, not the turns it had left.
    assert result.answer.startswith("stopped at the budget (cost "), result.answer
    assert "USD of 0.001 USD)" in result.answer  # to the micro-dollar: never 0.0010 of 0.001
    spent = result.answer.removeprefix("stopped at the budget (cost ").split(" USD")[0]
    assert Decimal(spent) == result.cost_usd.quantize(Decimal("0.000001")) >= Decimal("0.001")
    assert "turn budget" not in result.answer
    shown = render.result(result)  # what `agentctl result` prints
    assert shown.startswith("outcome: budget_exhausted after ")
    assert "\n  stopped at the budget (cost " in shown and "turn budget" not in shown


async def test_the_turn_limit_keeps_its_own_words(ts_env, ts_worker, task_queue):
    run = AgentRun(agent="bench", input={"turns": 4}, principal="tester", max_turns=2)
    handle = await start_run(ts_env.client, run, task_queue=task_queue)
    result = await handle.result()
    assert result.outcome == "turn_budget_exhausted" and result.turns == 2
    assert result.answer.startswith("turn budget of 2 used up."), result.answer
    assert "stopped at the budget" not in result.answer


async def test_an_approved_extension_lets_the_run_go_on(ts_env, ts_worker, task_queue):
    run = AgentRun(
        agent="bench",
        input={"turns": 4},
        principal="tester",
        budget=BudgetOverride(max_input_tokens=400, on_exhausted="ask"),
    )
    handle = await start_run(ts_env.client, run, task_queue=task_queue)
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
    handle = await start_onboarding(
        ts_env.client, task_queue, budget=BudgetOverride(deadline_hours=1)
    )
    await wait_for_status(handle, "waiting_event")
    await ts_env.sleep(timedelta(hours=2))
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    result = await handle.result()
    assert result.outcome == "budget_exhausted" and "deadline 1:00:00)" in result.answer
    assert "turn budget" not in result.answer
    assert ledger(handle.id, "send_email") == 0


async def run_past_a_deadline(
    env: WorkflowEnvironment, queue: str, workflow_id: str | None = None
) -> WorkflowHandle[Any, AgentResult]:
    """A reader with a one-hour deadline whose chain continues as new while an approval waits:
    40 minutes after the start its history grows (events) and it continues as new, 40 minutes
    later the approval comes. 80 minutes after the chain's first start, 40 after its current
    run's: past its deadline (`deadline-from-first-start-v1`; before it, a run of the chain
    measured from its own start and went on). Also `make histories`' `reader_deadline`."""
    run = AgentRun(
        agent="reader",
        principal="tester",
        input={"turns": 4, "per_turn": 2, "chars": 2000, "email_at": 4},
        continue_after_bytes=10_000,
        budget=BudgetOverride(deadline_hours=1),
    )
    wid = workflow_id or f"reader-deadline-{uuid.uuid4().hex[:8]}"
    handle = await start_run(env.client, run, wid, task_queue=queue)
    await wait_for_status(handle, "waiting_approval")
    await env.sleep(timedelta(minutes=40))
    waiting = (await handle.describe()).run_id
    for i in range(6):  # history grows while the approval waits: it continues as new
        event = EventSignal(name=f"note-{i}", payload={"text": "x" * 2000})
        await handle.signal(AgentWorkflow.on_event, event)

    async def moved_on() -> None:  # asks the server, not the run (no query mid-hand-over)
        while (await handle.describe()).run_id == waiting:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(moved_on(), 30)
    await wait_for_status(handle, "waiting_approval")
    await env.sleep(timedelta(minutes=40))
    await approve_pending(handle, approver="olga")
    return handle


async def test_a_chain_that_continued_as_new_stops_at_its_deadline_from_the_first_start(
    ts_env: WorkflowEnvironment, ts_worker: Any, task_queue: str
) -> None:
    handle = await run_past_a_deadline(ts_env, task_queue)
    result = await handle.result()

    assert result.outcome == "budget_exhausted", result.answer
    assert re.match(
        r"stopped at the budget \(1:20:\d\d since the start, deadline 1:00:00\)", result.answer
    ), result.answer
    status = await handle.query(AgentWorkflow.status)
    assert status.continued >= 1 and status.status == "budget_exhausted"
    # Every run of the chain carried its first start on, and every run replays.
    histories = await chain_histories(ts_env.client, handle.id, handle.first_execution_run_id or "")
    assert len(histories) >= 2
    begun = histories[0].events[0].event_time.ToDatetime(tzinfo=UTC)
    starts = {run.carried.chain.started_at for run in carried_runs(histories) if run.carried}
    [first] = starts
    assert first is not None and abs(first - begun) < timedelta(seconds=1)
    patch = [FIRST_START_PATCH.encode() in marker_bytes(h) for h in histories]
    assert patch == [True] + [False] * (len(histories) - 1)  # noted at the first run only
    for history in histories:
        assert (await replayer(AgentWorkflow).replay_workflow(history)).replay_failure is None


def marker_bytes(history: WorkflowHistory) -> bytes:
    events = history.events
    return b"".join(
        e.SerializeToString() for e in events if e.HasField("marker_recorded_event_attributes")
    )


async def test_a_chain_begun_before_the_first_start_was_noted_replays_as_it_ran() -> None:
    """Recorded by the code before `deadline-from-first-start-v1` (`run_past_a_deadline`): each
    run measured the deadline from its own start, so the chain went on past its hour. Today's
    code replays every run of it unchanged: a chain in flight keeps the deadline it began with."""
    paths = sorted(BEFORE.parent.glob(BEFORE.name))
    assert len(paths) == 3
    for path in paths:
        assert f"patch {FIRST_START_PATCH}" not in markers(path)
        assert (await replayer(AgentWorkflow).replay_workflow(load(path))).replay_failure is None
    last = json.loads(paths[-1].read_text())["events"]
    assert last[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    began = datetime.fromisoformat(json.loads(paths[0].read_text())["events"][0]["eventTime"])
    assert datetime.fromisoformat(last[-1]["eventTime"]) - began > timedelta(hours=1)
