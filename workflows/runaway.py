"""Runaway detection: an agent repeating itself, or going nowhere, is stopped, not paid for.

The same tool call with the same arguments made again and again, or turn after turn without a
new successful call, stops the loop; the spec says whether the run parks for an operator or asks
a person (an approval) whether it may go on.
"""

from __future__ import annotations

import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._spec import AgentSpec, RunawayPolicy
    from durable_agents._vocab.schemas import ToolCall
    from durable_agents.workflows import gates
    from durable_agents.workflows.exits import EndRun, aborted
    from durable_agents.workflows.state import RunState
    from durable_agents.workflows.waits import park


def call_key(call: ToolCall) -> str:
    return f"{call.name}:{json.dumps(call.arguments, sort_keys=True, separators=(',', ':'))}"


def record_turn(
    state: RunState, policy: RunawayPolicy, calls: list[ToolCall], new_successes: int
) -> str | None:
    """Count the turn; the reason to stop, if the agent is running away."""
    for call in calls:
        key = call_key(call)
        state.progress.call_counts[key] = state.progress.call_counts.get(key, 0) + 1
    state.progress.idle_turns = 0 if new_successes else state.progress.idle_turns + 1
    worst = max((state.progress.call_counts[call_key(c)] for c in calls), default=0)
    if worst >= policy.max_repeats:
        name = max(calls, key=lambda c: state.progress.call_counts[call_key(c)]).name
        return f"the same {name} call was made {worst} times"
    if state.progress.idle_turns >= policy.max_idle_turns:
        return f"{state.progress.idle_turns} turns in a row without a new successful tool call"
    return None


async def stop(state: RunState, spec: AgentSpec, reason: str) -> None:
    """Park, or ask a person, as the spec says; return only if the run may go on."""
    state.note("error", f"runaway: {reason}")
    policy = spec.runaway
    if policy.on_detect == "ask":
        approval = await gates.ask(
            state, "continue_run", f"runaway: {reason}", policy.groups, policy.ask_for
        )
        if approval.state != "approved":
            raise EndRun("gave_up", f"stopped: {reason}; going on was {approval.state}")
    elif await park(state, f"runaway: {reason}") == "abort":
        raise aborted(state)
    state.progress.call_counts.clear()
    state.progress.idle_turns = 0
