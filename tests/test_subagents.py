"""Sub-agents as child workflows: fan-out, depth, the shared budget, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from durable_agents._vocab.schemas import AgentRun, BudgetOverride
from durable_agents.client import start_run
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import wait_for_status


async def start(env, task_queue: str, budget: BudgetOverride | None = None, **data):  # type: ignore[no-untyped-def]
    run = AgentRun(
        agent="research",
        input={"question": "What is Temporal?"} | data,
        principal="tester",
        scopes=["wiki:read"],
        budget=budget,
    )
    return await start_run(env.client, run, task_queue=task_queue)


def spawned(transcript) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        json.loads(e.text.split(" -> ", 1)[1])
        for e in transcript
        if e.kind == "tool_result" and e.text.startswith("spawn_agent")
    ]


async def test_fans_out_in_parallel_and_merges(ts_env, ts_worker, task_queue):
    handle = await start(ts_env, task_queue, topics=["history", "design", "users"])
    result = await handle.result()

    assert result.outcome == "completed"
    for topic in ("history", "design", "users"):
        assert f"{topic}: three sources agree" in result.answer
    children = spawned(await handle.query(AgentWorkflow.transcript))
    assert {c["status"] for c in children} == {"completed"}
    # One ledger: the children's tokens are in the parent's usage.
    assert result.usage.input_tokens > sum(c["input_tokens"] for c in children) > 0
    starts = []
    async for event in handle.fetch_history_events():
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            starts.append(event.event_id)
    assert len(starts) == 3 and starts == list(range(starts[0], starts[0] + 3))  # same task


async def test_fan_out_is_bounded(ts_env, ts_worker, task_queue):
    handle = await start(ts_env, task_queue, topics=["a", "b", "c", "d"])
    result = await handle.result()
    statuses = [c["status"] for c in spawned(await handle.query(AgentWorkflow.transcript))]
    assert statuses.count("completed") == 3 and statuses.count("refused") == 1
    assert "at most 3 sub-agents at once" in result.answer


async def test_depth_is_bounded(ts_env, ts_worker, task_queue):
    handle = await start(ts_env, task_queue, topics=["x"], recurse=True)
    result = await handle.result()
    assert result.outcome == "completed"
    assert "too deep: sub-agents may nest 2 levels" in result.answer  # surfaced up the tree
    child = ts_env.client.get_workflow_handle(f"{handle.id}--call_0_spawn_agent")
    child_run = (await child.describe()).raw_description
    assert child_run.workflow_execution_info.parent_execution.workflow_id == handle.id


async def test_children_get_a_slice_of_the_parents_budget(ts_env, ts_worker, task_queue):
    handle = await start(
        ts_env, task_queue, BudgetOverride(max_input_tokens=8000), topics=["history", "design"]
    )
    result = await handle.result()
    assert result.outcome == "completed"
    child = ts_env.client.get_workflow_handle(f"{handle.id}--call_0_spawn_agent")
    history = await child.fetch_history()
    first = history.events[0].workflow_execution_started_event_attributes
    child_run = ts_env.client.data_converter.payload_converter.from_payloads(
        first.input.payloads, [AgentRun]
    )[0]
    assert child_run.depth == 1 and child_run.parent == handle.id
    assert child_run.scopes == ["wiki:read"]
    assert child_run.budget and 0 < child_run.budget.max_input_tokens <= 8000 * 0.25


async def test_cancelling_the_parent_cancels_the_children(ts_env, ts_worker, task_queue):
    handle = await start(ts_env, task_queue, topics=["wait", "wait"])
    child = ts_env.client.get_workflow_handle(f"{handle.id}--call_0_spawn_agent")
    for _ in range(100):  # the child exists once the parent's first turn is done
        with contextlib.suppress(RPCError):
            await child.describe()
            break
        await asyncio.sleep(0.1)
    await wait_for_status(child, "waiting_event")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    for _ in range(50):
        desc = await child.describe()
        if desc.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED:
            break
        await asyncio.sleep(0.1)
    assert desc.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
