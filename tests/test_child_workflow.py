"""A user's own workflow with fixed steps runs an agent as one of them (the seeds' onboarding
shape: a days-long wait, then the agent drafts and sends the welcome email)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agents import AgentResult, execute_agent
from durable_agents._discovery import discover
from durable_agents._vocab.schemas import EventSignal
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from sim.agents.onboarding import ONBOARDING, NewHire
from tests.helpers import approve_pending, hire


@workflow.defn(sandboxed=False)
class HireWorkflow:
    """Fixed steps of a user's own: wait for the start date, then onboard with the agent."""

    @workflow.run
    async def run(self, new_hire: NewHire) -> AgentResult:
        await workflow.sleep(timedelta(days=3), summary="until a week before the start date")
        return await execute_agent(
            ONBOARDING, new_hire, principal="tester", id=f"{workflow.info().workflow_id}--agent"
        )


@workflow.defn(sandboxed=False)
class WrongInputWorkflow:
    @workflow.run
    async def run(self) -> AgentResult:
        return await execute_agent(ONBOARDING, EventSignal(name="x"), principal="tester")


async def test_a_users_workflow_runs_an_agent_as_a_typed_step(
    ts_env: WorkflowEnvironment, sim, task_queue: str, ledger
) -> None:
    async with build_worker(ts_env.client, task_queue, agents=discover(), workflows=[HireWorkflow]):
        handle = await ts_env.client.start_workflow(
            HireWorkflow.run, NewHire(**hire()), id=f"hire-{task_queue}", task_queue=task_queue
        )
        agent = ts_env.client.get_workflow_handle(f"hire-{task_queue}--agent")
        await ts_env.sleep(timedelta(days=3, minutes=1))  # the child starts after three days
        for _ in range(300):
            try:
                await agent.describe()
                break
            except Exception:  # noqa: BLE001  (not started yet)
                await asyncio.sleep(0.1)
        await agent.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
        await approve_pending(agent)
        result = await handle.result()
    assert isinstance(result, AgentResult) and result.outcome == "completed"
    assert ledger(agent.id, "send_email") == 1


async def test_the_agents_input_model_is_checked(
    dev_env: WorkflowEnvironment, sim, task_queue: str
) -> None:
    # On the dev server: a task that keeps failing stalls the time-skipping server's clock for
    # the tests after it, even once the run is terminated.
    async with build_worker(
        dev_env.client, task_queue, agents=discover(), workflows=[WrongInputWorkflow]
    ):
        handle = await dev_env.client.start_workflow(
            WrongInputWorkflow.run, id=f"wrong-{task_queue}", task_queue=task_queue
        )
        try:
            history = await _failed_task(handle)
        finally:
            await handle.terminate("checked")  # its task would fail forever
    assert "agent 'onboarding' takes NewHire, not EventSignal" in history


async def _failed_task(handle: WorkflowHandle[Any, Any]) -> str:
    """The message of the run's first failed workflow task, once there is one."""
    for _ in range(100):
        history = await handle.fetch_history()
        for e in history.events:
            if e.HasField("workflow_task_failed_event_attributes"):
                return str(e.workflow_task_failed_event_attributes.failure.message)
        await asyncio.sleep(0.1)
    raise AssertionError("no workflow task failed")
