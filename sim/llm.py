"""What the two wire formats share: script lookup, fault handling, ids and token counts.

The provider modules only translate JSON in and out; every decision (which script, which fault,
which tool-call ids) is made here once, so the OpenAI and Anthropic faces cannot drift apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math

from sim.conversation import Conversation, Reply, ToolCall
from sim.faults import MODEL_ERROR_FAULTS, Fault, FaultBook, FaultError
from sim.scripts import SCRIPTS, SUMMARIZE_MARKER, SUMMARY_HEADER, summarize

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
UNKNOWN_TOOL = "launch_rocket"


class ModelError(Exception):
    """A failure to report in the provider's error format.

    `kind` is neutral (rate_limit, unavailable, overloaded, server_error, auth, context_length,
    not_found, invalid_request); each provider maps it to its status, type and code. An empty
    message means "use the provider's usual wording".
    """

    def __init__(
        self,
        kind: str,
        message: str = "",
        *,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.param = param


def retry_headers(error: ModelError) -> dict[str, str]:
    """Retry-After (whole seconds, as HTTP wants) and retry-after-ms for a rate limit."""
    if error.retry_after is None:
        return {}
    seconds = error.retry_after
    # Round up: a client reading only whole seconds must not come back early.
    return {
        "retry-after": str(max(0, math.ceil(seconds))),
        "retry-after-ms": str(int(seconds * 1000)),
    }


def _resolve_fault(book: FaultBook, model: str, fault_header: str | None) -> Fault | None:
    try:
        fault = book.resolve("model", model, fault_header)
    except FaultError as exc:
        raise ModelError("invalid_request", str(exc)) from exc
    if fault is None or fault.name not in MODEL_ERROR_FAULTS:
        return fault
    retry_after = fault.number("retry_after", 1) if fault.name == "rate_limit" else None
    raise ModelError(fault.name, retry_after=retry_after)


async def run_model(
    book: FaultBook, model: str, fault_header: str | None, conv: Conversation, id_prefix: str
) -> Reply:
    """Produce the reply for one request, or raise ModelError."""
    script = SCRIPTS.get(model)
    if script is None:
        known = ", ".join(sorted(SCRIPTS))
        raise ModelError(
            "not_found",
            f"The model '{model}' does not exist; known scripts: {known}",
            param="model",
        )
    fault = _resolve_fault(book, model, fault_header)
    if fault is not None and fault.name == "slow":
        await asyncio.sleep(fault.number("seconds", 5))
    conv.link_tool_names()
    # Any model can be asked to compact a conversation; the request says so in its system prompt.
    if conv.system.startswith(SUMMARIZE_MARKER):
        reply = summarize(conv)
    else:
        conv.expand_summaries(SUMMARY_HEADER)
        reply = script(conv)
    turn = conv.assistant_count()
    reply = _apply_reply_fault(reply, fault)
    for index, call in enumerate(reply.tool_calls):
        infix = f"{turn}" if index == 0 else f"{turn}_{index}"
        call.id = f"{id_prefix}_{infix}_{call.name}"
    return reply


def _apply_reply_fault(reply: Reply, fault: Fault | None) -> Reply:
    """Corrupt a good reply the way real models sometimes do."""
    if fault is None:
        return reply
    if fault.name == "refusal":
        return Reply(refusal=REFUSAL_TEXT)
    if fault.name == "cut_stream":
        reply.cut = True
    if fault.name == "unknown_tool":
        return Reply(tool_calls=[ToolCall(UNKNOWN_TOOL, {"target": "moon"})])
    if fault.name == "malformed_tool_json":
        for call in reply.tool_calls:
            good = json.dumps(call.args)
            call.args = good[: max(1, len(good) // 2)]  # cut mid-object: never valid JSON
    return reply


def usage(raw_request: bytes, reply: Reply) -> tuple[int, int]:
    """Rough token counts (4 characters a token), at least 1 each."""
    return max(1, len(raw_request) // 4), max(1, len(reply.output_text()) // 4)


def response_id(prefix: str, raw_request: bytes) -> str:
    """Deterministic id, so a retried request gets an identical reply."""
    return prefix + hashlib.sha256(raw_request).hexdigest()[:24]
