"""POST /v1/messages in the Anthropic Messages wire format; with `stream: true`, as its
server-sent events (text in pieces at the pace of DURABLE_AGENTS_SIM_STREAM_MS, tool input
whole, then the stop reason and usage).

Only translation lives here: content blocks to the neutral Conversation, Reply to content blocks,
ModelError to Anthropic's error body, so the real `anthropic` client raises its usual exceptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.conversation import Conversation, Reply, ToolCall, Turn
from sim.faults import FAULT_HEADER, FaultBook
from sim.llm import ModelError, response_id, retry_headers, run_model, usage

# kind -> (status, type, default message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "Number of requests has exceeded your rate limit."),
    "unavailable": (503, "api_error", "The service is temporarily unavailable."),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "context_length": (
        400,
        "invalid_request_error",
        "prompt is too long: 210000 tokens > 200000 maximum",
    ),
    "not_found": (404, "not_found_error", "model not found"),
    "invalid_request": (400, "invalid_request_error", "Invalid request."),
}

Content = str | list[dict[str, Any]]


class _Message(BaseModel):
    role: str
    content: Content


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int
    messages: list[_Message]
    system: Content | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool | None = None


def error_response(error: ModelError) -> JSONResponse:
    status, type_, default = _ERRORS.get(error.kind, _ERRORS["server_error"])
    body = {"type": "error", "error": {"type": type_, "message": error.message or default}}
    return JSONResponse(body, status_code=status, headers=retry_headers(error))


def _text(content: Content | None) -> str:
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return content or ""


def _user_turns(content: Content) -> list[Turn]:
    """A user message may carry tool results and text; each becomes its own turn."""
    if isinstance(content, str):
        return [Turn("user", content)]
    turns: list[Turn] = []
    for block in content:
        if block.get("type") == "tool_result":
            text = _text(block.get("content"))
            error = bool(block.get("is_error"))
            turns.append(Turn("tool", text, tool_call_id=block.get("tool_use_id"), is_error=error))
        elif block.get("type") == "text":
            turns.append(Turn("user", str(block.get("text", ""))))
    return turns


def to_conversation(req: MessagesRequest) -> Conversation:
    conv = Conversation(system=_text(req.system))
    for msg in req.messages:
        if msg.role != "assistant":
            conv.turns.extend(_user_turns(msg.content))
            continue
        content = msg.content
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        calls = [
            ToolCall(str(b.get("name", "")), b.get("input", {}), str(b.get("id", "")))
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        conv.turns.append(Turn("assistant", _text(blocks), tool_calls=calls))
    return conv


def render(req: MessagesRequest, reply: Reply, raw: bytes) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    text = reply.refusal or reply.text
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.tool_calls:
        # A malformed call keeps its raw string as `input`; the SDK passes it through unparsed.
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.args})
    stop = "refusal" if reply.refusal else "tool_use" if reply.tool_calls else "end_turn"
    input_tokens, output_tokens = usage(raw, reply)
    return {
        "id": response_id("msg_", raw),
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def _parse(raw: bytes) -> MessagesRequest:
    try:
        req = MessagesRequest.model_validate_json(raw)
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelError("invalid_request", message) from exc
    return req


STREAM_CHUNK = 16  # characters of text a streamed delta carries


async def stream(req: MessagesRequest, reply: Reply, raw: bytes) -> AsyncIterator[bytes]:
    """The reply as Anthropic's stream events (message_start … message_stop)."""
    import asyncio

    from sim import settings

    pace = settings.current().sim_stream_ms / 1000
    whole = render(req, reply, raw)

    def event(kind: str, body: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind} | body)}\n\n".encode()

    start = dict(whole, content=[], stop_reason=None)
    start["usage"] = {"input_tokens": whole["usage"]["input_tokens"], "output_tokens": 1}
    yield event("message_start", {"message": start})
    for index, block in enumerate(whole["content"]):
        if block["type"] == "text":
            yield event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            text = block["text"]
            for at in range(0, len(text), STREAM_CHUNK):
                if pace:
                    await asyncio.sleep(pace)
                if reply.cut and at >= len(text) // 2:
                    raise ConnectionAbortedError("cut_stream: the reply stops half-way")
                delta = {"type": "text_delta", "text": text[at : at + STREAM_CHUNK]}
                yield event("content_block_delta", {"index": index, "delta": delta})
        else:
            opened = dict(block, input={})
            yield event("content_block_start", {"index": index, "content_block": opened})
            given = block["input"]
            partial = given if isinstance(given, str) else json.dumps(given)
            delta = {"type": "input_json_delta", "partial_json": partial}
            yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    stop = {"stop_reason": whole["stop_reason"], "stop_sequence": None}
    yield event(
        "message_delta",
        {"delta": stop, "usage": {"output_tokens": whole["usage"]["output_tokens"]}},
    )
    yield event("message_stop", {})


def router(book: FaultBook) -> APIRouter:
    api = APIRouter(tags=["anthropic"])

    @api.post("/v1/messages")
    async def messages(request: Request) -> Response:
        raw = await request.body()
        try:
            req = _parse(raw)
            conv = to_conversation(req)
            reply = await run_model(
                book, req.model, request.headers.get(FAULT_HEADER), conv, "toolu"
            )
        except ModelError as exc:
            return error_response(exc)
        if req.stream:
            return StreamingResponse(stream(req, reply, raw), media_type="text/event-stream")
        return JSONResponse(render(req, reply, raw))

    return api
