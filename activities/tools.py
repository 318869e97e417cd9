"""The `run_tool` activity: check the input, run the tool's code, check the answer.

One `ToolRunner` per worker holds the catalog of the tools it serves (workers/plugin.py); its
bound method is the activity, so no module-level registry decides what runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agents._catalog import Catalog
from durable_agents._spec import TOOL_NON_RETRYABLE, ToolContract, problems
from durable_agents._tools import ToolContext
from durable_agents._vocab import chain
from durable_agents._vocab import failures as f
from durable_agents._vocab.names import RUN_TOOL
from durable_agents._vocab.schemas import AuditKind, BlobRef, ToolRequest, ToolResult, entry_for
from durable_agents.activities import observe
from durable_agents.activities.audit import audit_log
from durable_agents.activities.conversation import store_message
from durable_agents.activities.heartbeat import heartbeating
from durable_agents.activities.identity import TokenBroker
from durable_agents.activities.store import get_store
from durable_agents.errors import ToolRejected, ToolTransient
from durable_agents.settings import current


def _audit(
    request: ToolRequest,
    side_effect: str | None,
    kind: AuditKind,
    outcome: str,
    **details: Any,
) -> None:
    if side_effect is None or side_effect == "read_only":
        return  # reads change nothing: their trail is the run's history
    who = request.identity
    suffix = {"side_effect": "", "side_effect_failed": "#failed", "refused": "#refused"}
    audit_log().append(
        entry_for(
            who,
            request.idempotency_key + suffix.get(kind, "#" + kind),
            kind,
            tool=request.tool,
            side_effect=side_effect,
            outcome=outcome,
            details={"arguments": request.arguments, **details},
        )
    )


async def audited(
    request: ToolRequest, side_effect: str | None, work: Awaitable[ToolResult]
) -> ToolResult:
    """Run one tool call (a worker's own or an MCP server's) in its span; a side effect, a
    refusal and a final failure go to the audit log."""
    try:
        with observe.tool_call(request, side_effect or "unknown"):
            result = await work
    except ApplicationError as err:
        if err.non_retryable:
            kind: AuditKind = "refused" if err.type == f.PERMISSION_DENIED else "side_effect_failed"
            _audit(request, side_effect, kind, err.type or "failed", error=err.message)
        raise
    who = request.identity
    activity.logger.info(
        "tool %s done",
        request.tool,
        extra={"agent": who.agent, "principal": who.principal, "tool": request.tool},
    )
    blob = result.blob.model_dump(mode="json") if result.blob else None
    _audit(request, side_effect, "side_effect", "ok", output=result.output, blob=blob)
    return result


def check_scopes(request: ToolRequest, required: Iterable[str]) -> None:
    """The check that holds even if the workflow's did not: the run's grant covers the tool."""
    missing = [s for s in required if s not in request.identity.scopes]
    if missing:
        raise ApplicationError(
            f"{request.tool} needs scope {', '.join(missing)}, not granted to "
            f"{request.identity.workflow_id} (acting for {request.identity.principal})",
            type=f.PERMISSION_DENIED,
            non_retryable=True,
        )


class ToolRunner:
    """The `run_tool` activity over one catalog's tools."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.tokens = TokenBroker()

    @activity.defn(name=RUN_TOOL)
    async def run_tool(self, request: ToolRequest) -> ToolResult:
        """Run one tool call; side effects (and refusals, and final failures) are audited."""
        contract = self._catalog.tool(request.tool)
        side_effect = contract.side_effect if contract else None
        return await audited(request, side_effect, _run_tool(request, contract, self.tokens))


async def _run_tool(
    request: ToolRequest, contract: ToolContract | None, tokens: TokenBroker
) -> ToolResult:
    """Run one tool call; the idempotency key makes a retried call a no-op at the system."""
    if contract is None or contract.implementation is None:
        raise ApplicationError(
            f"no tool named {request.tool!r} on this worker",
            type=f.UNKNOWN_TOOL,
            non_retryable=True,
        )
    check_scopes(request, contract.required_scopes)
    try:
        args = contract.input_model.model_validate(request.arguments)
    except ValidationError as exc:
        raise ApplicationError(
            f"arguments of {request.tool} do not fit its schema: {problems(exc)}",
            type=f.TOOL_INPUT_INVALID,
            non_retryable=True,
        ) from None
    limit = activity.info().start_to_close_timeout or timedelta(seconds=30)
    audience, scopes = contract.audience, contract.required_scopes
    # After the scope check: a call the run may not make never obtains a token.
    token = await tokens.token(request, audience, scopes) if audience else None
    ctx = ToolContext(
        tool=request.tool,
        idempotency_key=request.idempotency_key,
        identity=request.identity,
        deadline=datetime.now(UTC) + limit,
        heartbeat=activity.heartbeat,
        token=token,
    )
    try:
        raw = await heartbeating(contract.implementation(args, ctx), f"tool {request.tool}")
    except ToolRejected as exc:
        raise ApplicationError(str(exc), type=f.TOOL_REJECTED, non_retryable=True) from None
    except ToolTransient as exc:
        raise ApplicationError(str(exc), type=f.TOOL_TRANSIENT) from None
    except ApplicationError as err:
        if audience and err.type == f.AUTHENTICATION_FAILED:
            tokens.forget(request, audience, scopes)  # the system refused it: ask anew next time
        if err.type in TOOL_NON_RETRYABLE and not err.non_retryable:
            # The type decides: a rejection is final even if the implementation forgot to say.
            raise ApplicationError(
                err.message, *err.details, type=err.type, non_retryable=True
            ) from err
        raise
    try:
        output = contract.output_model.model_validate(raw)
    except ValidationError as exc:
        raise ApplicationError(
            f"{request.tool} answered outside its contract: {problems(exc)}; "
            f"answer: {repr(raw)[:500]}",
            type=f.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        ) from None
    result = ToolResult(tool=request.tool, output=output.model_dump(mode="json"))
    return await handed_back(request, result)


async def handed_back(request: ToolRequest, result: ToolResult) -> ToolResult:
    """Store the result as the run's next message; a large one is passed by reference."""
    handling = request.result
    if handling is None:
        return result
    text = chain.result_text(result.output)
    size = len(text.encode())
    limit = current().max_tool_result_bytes
    if size > limit:
        raise ApplicationError(
            f"the result of {request.tool} is {size:,} bytes, over the worker's limit of "
            f"{limit:,} (DURABLE_AGENTS_MAX_TOOL_RESULT_BYTES): ask for less",
            {"payload": f"result of {request.tool}", "bytes": size, "limit": limit},
            type=f.PAYLOAD_TOO_LARGE,
            non_retryable=True,
        )
    if size > handling.inline_bytes:
        body = text.encode()
        blob = BlobRef(hash=chain.digest(body), size=size, view=handling.view)
        await get_store().put({blob.hash: body})
        result = ToolResult(
            tool=request.tool,
            output={},
            preview=chain.preview(text, blob, handling.preview_chars),
            blob=blob,
        )
    await store_message(chain.tool_message(handling.tool_call_id, request.tool, result))
    return result
