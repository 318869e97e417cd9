"""An agent as one step of a user's own workflow: a child workflow with typed input and result.

    @workflow.defn
    class Hire:
        @workflow.run
        async def run(self, hire: NewHire) -> str:
            await workflow.execute_activity(create_badge, hire, ...)   # fixed steps of your own
            result = await execute_agent(ONBOARDING, hire, principal="hr-bot")
            return result.answer

The child runs on the agent workers' task queue (the parent's by default), with everything an
agent run has: approvals, budgets, audit, continue-as-new. Cancelling the parent cancels it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from temporalio import workflow

from durable_agents._spec import AgentSpec
from durable_agents._vocab.names import WORKFLOW
from durable_agents._vocab.schemas import AgentResult, AgentRun, BudgetOverride


async def execute_agent(
    agent: AgentSpec,
    input: BaseModel,
    *,
    principal: str,
    task: str = "",
    scopes: Sequence[str] | None = None,
    budget: BudgetOverride | None = None,
    id: str | None = None,
    task_queue: str | None = None,
) -> AgentResult:
    """Run `agent` on `input` (an instance of its input model) as a child workflow, acting for
    `principal`, and return its result. Call it from workflow code only."""
    if not isinstance(input, agent.input_model):
        raise TypeError(
            f"agent {agent.name!r} takes {agent.input_model.__name__}, not {type(input).__name__}"
        )
    run = AgentRun(
        agent=agent.name,
        input=input.model_dump(mode="json"),
        task=task,
        principal=principal,
        scopes=list(scopes) if scopes is not None else None,
        budget=budget,
    )
    child_id = id or f"{workflow.info().workflow_id}--{agent.name}-{workflow.uuid4().hex[:8]}"
    result: AgentResult = await workflow.execute_child_workflow(
        WORKFLOW, run, id=child_id, task_queue=task_queue, result_type=AgentResult
    )
    return result
