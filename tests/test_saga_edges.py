"""Edges of the saga and of bad input: the pivot, cancellation, input the workflow refuses."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from durable_agents._builtin import SleepUntilInput
from durable_agents._vocab.schemas import AgentRun
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import hire, wait_for_status
from tests.test_refund import seed, start_refund, ticket


async def test_a_refund_retried_after_a_refusal_is_not_undone(
    ts_env, ts_worker, sim, fault, task_queue, ledger
):
    # The payments system refuses the first hold; the model tries again and all goes well:
    # the refusal was the model's to handle, and past the refund nothing is undone.
    fault("place_hold", "refused", times=1)
    order = seed(sim.url, "45.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "issue_refund") == 1
    assert ledger(handle.id, "release_hold") == 0
    assert ticket(sim.url, order["ticket_id"])["status"] == "resolved"


async def test_cancelling_a_saga_undoes_its_steps(ts_env, ts_worker, sim, task_queue, ledger):
    order = seed(sim.url, "250.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    await wait_for_status(handle, "waiting_approval")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert ledger(handle.id, "release_hold") == 1
    assert ledger(handle.id, "issue_refund") == 0
    assert ticket(sim.url, order["ticket_id"])["status"] == "refund_rejected"


async def test_a_bad_route_from_any_starter_fails_the_run_clearly(ts_env, ts_worker, task_queue):
    run = AgentRun(agent="onboarding", input=hire(), model_route=["gpt-4.1"])
    handle = await ts_env.client.start_workflow(
        AgentWorkflow.run, run, id=f"bad-{uuid.uuid4().hex[:6]}", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRun"
    assert "gpt-4.1" in cause.message


def test_times_without_a_timezone_go_back_to_the_model() -> None:
    with pytest.raises(ValidationError):
        SleepUntilInput(until=datetime(2026, 12, 1, 9, 0))
