"""Budget checks between turns: tokens, cost and deadline, against the run's limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._budgets import Budget
    from durable_agents._routes import parse_route
    from durable_agents._vocab.schemas import LLMReply
    from durable_agents.errors import UnknownPrice
    from durable_agents.workflows import catalog, gates
    from durable_agents.workflows.exits import EndRun
    from durable_agents.workflows.state import RunState

ASK_FOR = timedelta(days=1)  # how long an extension request waits before it counts as a no
# The deadline counts from the chain's first start, carried across continue-as-new
# (`chain.started_at`). Chains begun before this patch (`workflow.patched` false on replay of
# their first run) carry no first start: each of their runs measures from its own, as before.
FIRST_START_PATCH = "deadline-from-first-start-v1"


def begin(state: RunState) -> None:
    """At a chain's first run, note when it started (a later run carries it over)."""
    info = workflow.info()
    if info.continued_run_id is None and workflow.patched(FIRST_START_PATCH):
        state.chain.started_at = info.start_time


def started(state: RunState) -> datetime:
    """When the run began, for its deadline: the chain's first start, if it was noted."""
    return state.chain.started_at or workflow.info().start_time


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
        # To the micro-dollar (as the cost metric counts): 0.0010 of 0.001 would read as under.
        return f"cost {state.spending.cost_usd:.6f} USD of {budget.max_cost_usd * factor} USD"
    if budget.deadline:
        elapsed = workflow.now() - started(state)
        if elapsed >= budget.deadline * factor:
            elapsed = timedelta(seconds=int(elapsed.total_seconds()))  # as an operator reads it
            return f"{elapsed} since the start, deadline {budget.deadline * factor}"
    return None


async def check(state: RunState, budget: Budget, partial: str) -> None:
    """Return if the run may take another turn; else stop it or ask to extend, as set. The
    answer of a stopped run names the limit that stopped it, then `partial` (its last word)."""
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
