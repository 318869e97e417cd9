"""Sub-agents as child workflows: a slice of the parent's budget, narrower or equal scopes,
bounded depth and fan-out, and one ledger: a child's usage counts in its parent's.

Children are started with `ParentClosePolicy.REQUEST_CANCEL`, so cancelling or aborting the
parent cancels them; a child's failure comes back to the parent's model as the tool's result.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from durable_agents._builtin import SpawnAgentInput, SpawnAgentOutput
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab.schemas import AgentResult, AgentRun, BudgetOverride, ToolCall
    from durable_agents.errors import UnknownAgent
    from durable_agents.workflows import catalog
    from durable_agents.workflows.state import RunState


def refusal(child: str, why: str) -> dict[str, Any]:
    return SpawnAgentOutput(child=child, status="refused", answer=why).model_dump(mode="json")


def narrowed(state: RunState, run: AgentRun, requested: list[str] | None) -> list[str]:
    """A child's scopes: the parent's, or those of them it asked for; never more."""
    held = state.scopes if state.scopes is not None else list(run.scopes or [])
    return held if requested is None else [s for s in held if s in requested]


def slice_of(state: RunState, run: AgentRun, spec: AgentSpec, share: float) -> int | None:
    """Input tokens the child may spend: a share of what the parent has left, or None."""
    limit = (run.budget.max_input_tokens if run.budget else None) or spec.budget.max_input_tokens
    if not limit:
        return None
    left = (
        limit * 2**state.spending.budget_extensions
        - state.usage.input_tokens
        - state.spending.reserved_tokens
    )
    return max(0, int(left * share))


async def spawn(
    state: RunState, spec: AgentSpec, run: AgentRun, call: ToolCall, args: SpawnAgentInput
) -> dict[str, Any]:
    child_id = f"{workflow.info().workflow_id}--{call.id}"
    if run.depth + 1 > spec.max_depth:
        return refusal(child_id, f"too deep: sub-agents may nest {spec.max_depth} levels")
    if state.spending.active_children >= spec.max_children:
        return refusal(child_id, f"at most {spec.max_children} sub-agents at once")
    try:
        child_spec = catalog.current().agent(args.agent)
        child_spec.input_model.model_validate(args.input)
    except (UnknownAgent, ValueError) as exc:
        return refusal(child_id, str(exc))
    tokens = slice_of(state, run, spec, args.budget_share)
    if tokens == 0:
        return refusal(child_id, "no budget left to give a sub-agent")
    child_run = AgentRun(
        agent=args.agent,
        input=args.input,
        task=args.task,
        principal=run.principal,
        scopes=narrowed(state, run, args.scopes),  # never more than the parent holds
        budget=BudgetOverride(max_input_tokens=tokens) if tokens else None,
        depth=run.depth + 1,
        parent=workflow.info().workflow_id,
        granted_to=_grant_of(state),
        # The root run's start proof: the child acts for the same person, under that grant.
        proof=(state.started_by or {}).get("proof"),
    )
    state.spending.active_children += 1
    state.spending.reserved_tokens += tokens or 0
    state.note(
        "note",
        f"sub-agent {child_id} ({args.agent}) started"
        + (f" with {tokens} input tokens" if tokens else ""),
    )
    try:
        result: AgentResult = await workflow.execute_child_workflow(
            "AgentWorkflow",
            child_run,
            id=child_id,
            result_type=AgentResult,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"{args.agent} sub-agent of {workflow.info().workflow_id}",
        )
    except ChildWorkflowError as err:
        if is_cancelled_exception(err):
            raise
        return SpawnAgentOutput(
            child=child_id, status="failed", answer=str(err.cause or err)
        ).model_dump(mode="json")
    finally:
        state.spending.active_children -= 1
        state.spending.reserved_tokens -= tokens or 0
    state.usage = state.usage.plus(result.usage)
    state.spending.cost_usd += result.cost_usd
    return SpawnAgentOutput(
        child=child_id,
        status="completed",
        outcome=result.outcome,
        answer=result.answer,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
    ).model_dump(mode="json")


def _grant_of(state: RunState) -> str | None:
    """The agent whose grant a child acts under: its parent's grant's (the root run's agent)."""
    who = state.identity
    if who is None:
        return None
    return who.granted_to or who.agent
