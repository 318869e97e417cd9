"""Budget checks between turns: tokens, cost and deadline, against the run's limits."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._budgets import Budget, UnknownPrice
    from durable_agents._routes import parse_route
    from durable_agents._vocab.models import LLMReply
    from workflows import catalog, gates
    from workflows.state import RunState
    from workflows.waits import EndRun

ASK_FOR = timedelta(days=1)  # how long an extension request waits before it counts as a no


def charge(state: RunState, budget: Budget, route: str, reply: LLMReply) -> None:
    model = parse_route(route).model
    try:
        usage = reply.usage
        cost = budget.cost(model, usage.input_tokens, usage.output_tokens, catalog.current().models)
    except UnknownPrice as exc:  # a cost limit and no price: fail closed, never count it free
        raise EndRun("budget_exhausted", f"stopped: {exc}") from None
    state.spending.cost_usd += cost
    agent = state.identity.agent if state.identity else "-"
    workflow.metric_meter().create_counter(
        "durable_agents_cost", "what model calls cost", "micro-USD"
    ).add(int(cost * 1_000_000), {"agent": agent, "model": model})


def exceeded(state: RunState, budget: Budget) -> str | None:
    """Which limit the run has reached, if any (each extension doubles the limits)."""
    factor = 2**state.spending.budget_extensions
    usage = state.usage
    if budget.max_input_tokens and usage.input_tokens >= budget.max_input_tokens * factor:
        return f"{usage.input_tokens} input tokens of {budget.max_input_tokens * factor}"
    if budget.max_output_tokens and usage.output_tokens >= budget.max_output_tokens * factor:
        return f"{usage.output_tokens} output tokens of {budget.max_output_tokens * factor}"
    if budget.max_cost_usd and state.spending.cost_usd >= budget.max_cost_usd * factor:
        return f"cost {state.spending.cost_usd:.4f} USD of {budget.max_cost_usd * factor} USD"
    if budget.deadline:
        elapsed = workflow.now() - workflow.info().start_time
        if elapsed >= budget.deadline * factor:
            return f"{elapsed} since the start, deadline {budget.deadline * factor}"
    return None


async def check(state: RunState, budget: Budget, partial: str) -> None:
    """Return if the run may take another turn; else stop it or ask to extend, as set."""
    reason = exceeded(state, budget)
    if reason is None:
        return
    state.note("error", f"budget reached: {reason}")
    if budget.on_exhausted == "ask":
        approval = await gates.ask(
            state, "extend_budget", f"budget reached: {reason}", budget.approvers, ASK_FOR
        )
        if approval.state == "approved":
            state.spending.budget_extensions += 1
            return
    raise EndRun("budget_exhausted", f"stopped at the budget ({reason}). {partial}".strip())
