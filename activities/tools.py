"""The `run_tool` activity: check the input, call the system, check the answer."""

from __future__ import annotations

from datetime import timedelta

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.company import IMPLEMENTATIONS, ToolContext
from activities.heartbeat import heartbeating
from agents.spec import problems
from agents.toolbox import TOOL_CONTRACTS
from workflows import failures as f
from workflows.models import ToolRequest, ToolResult


@activity.defn
async def run_tool(request: ToolRequest) -> ToolResult:
    """Run one tool call; the idempotency key makes a retried call a no-op at the system."""
    contract = TOOL_CONTRACTS.get(request.tool)
    implementation = IMPLEMENTATIONS.get(request.tool)
    if contract is None or implementation is None:
        raise ApplicationError(
            f"no tool named {request.tool!r} on this worker",
            type=f.UNKNOWN_TOOL,
            non_retryable=True,
        )
    try:
        args = contract.input_model.model_validate(request.arguments)
    except ValidationError as exc:
        raise ApplicationError(
            f"arguments of {request.tool} do not fit its schema: {problems(exc)}",
            type=f.TOOL_INPUT_INVALID,
            non_retryable=True,
        ) from None
    limit = activity.info().start_to_close_timeout or timedelta(seconds=30)
    ctx = ToolContext(request.idempotency_key, request.identity, limit.total_seconds())
    raw = await heartbeating(implementation(args, ctx), f"tool {request.tool}")
    try:
        output = contract.output_model.model_validate(raw)
    except ValidationError as exc:
        raise ApplicationError(
            f"{request.tool} answered outside its contract: {problems(exc)}; "
            f"answer: {repr(raw)[:500]}",
            type=f.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        ) from None
    return ToolResult(tool=request.tool, output=output.model_dump(mode="json"))
