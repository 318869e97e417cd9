"""Sagas: completed reversible steps are undone, newest first, when the run cannot finish.

Each reversible step that succeeds records its compensation; when an approval is refused or a
step fails for good, the workflow runs them in reverse as `run_tool` activities with their own
idempotency keys, so a retried compensation is done once too.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_agents._spec import AgentSpec, ToolContract
    from durable_agents._vocab.names import RUN_TOOL
    from durable_agents._vocab.schemas import Identity, ToolCall, ToolRequest, ToolResult
    from durable_agents.workflows import catalog
    from durable_agents.workflows.state import PendingCompensation, RunState
    from durable_agents.workflows.turns import cancelled, failure_message
    from durable_agents.workflows.waits import park


def record(
    state: RunState,
    contract: ToolContract,
    call: ToolCall,
    arguments: dict[str, Any],
    output: dict[str, Any],
) -> None:
    if contract.side_effect == "irreversible":
        # The pivot: past an irreversible step, the earlier ones are no longer undone.
        state.saga.compensations.clear()
        state.saga.unwind_outcome = state.saga.unwinding = None
        return
    if contract.compensation is None:
        return
    state.saga.compensations.append(
        PendingCompensation(
            step=call.name,
            tool=contract.compensation.tool_name,
            arguments={"input": arguments, "output": output},
            idempotency_key=f"{workflow.info().workflow_id}/{call.id}/undo",
        )
    )


async def unwind(state: RunState, spec: AgentSpec, identity: Identity, reason: str) -> list[str]:
    """Run the recorded compensations newest first; return one line per compensation."""
    done: list[str] = []
    while state.saga.compensations:
        pending = state.saga.compensations.pop()
        step = spec.tool(pending.step) or catalog.tool(pending.step)
        assert step.compensation is not None
        args = step.compensation.arguments(
            pending.arguments["input"], pending.arguments["output"], reason[:1000]
        )
        if args is None:
            continue
        line = f"{pending.tool}({json.dumps(args, sort_keys=True)}) undoing {pending.step}"
        if await _undo(state, pending, args, identity, line):
            state.note("compensation", line)
            done.append(line)
        else:
            done.append(f"NOT DONE {line}")
    return done


async def _undo(
    state: RunState, pending: PendingCompensation, args: dict[str, Any], who: Identity, line: str
) -> bool:
    """Run one compensation; if it fails for good, an operator decides (resume retries it)."""
    while True:
        try:
            await _run(pending, args, who, state.turn)
            return True
        except ActivityError as err:
            if cancelled(err):
                raise
            state.note("error", f"compensation failed: {line}: {failure_message(err)}")
            action = await park(state, f"compensation {line} failed: {failure_message(err)}")
            if action != "resume":
                return False  # retry-turn skips it, abort stops trying: both said in the answer


async def _run(
    pending: PendingCompensation, args: dict[str, Any], who: Identity, turn: int
) -> None:
    contract = catalog.tool(pending.tool)
    await workflow.execute_activity(
        RUN_TOOL,
        ToolRequest(
            tool=pending.tool,
            arguments=args,
            idempotency_key=pending.idempotency_key,
            identity=who,
        ),
        start_to_close_timeout=contract.timeout,
        retry_policy=contract.retry_policy(),
        task_queue=contract.task_queue,
        result_type=ToolResult,
        summary=f"compensation {pending.tool} for {pending.step} · turn {turn}",
    )
