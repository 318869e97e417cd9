"""POST /v1/chat/completions in the OpenAI Chat Completions wire format; with `stream: true`,
as server-sent chunks (text in pieces at the pace of DURABLE_AGENTS_SIM_STREAM_MS, tool calls
whole, then the finish reason, the usage when asked, and `[DONE]`).

Only translation lives here: request JSON to the neutral Conversation, Reply to response JSON,
ModelError to OpenAI's error body, so the real `openai` client raises its usual exceptions.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.conversation import Conversation, Reply, ToolCall, Turn
from sim.faults import FAULT_HEADER, FaultBook
from sim.llm import ModelError, response_id, retry_headers, run_model, usage

# kind -> (status, type, code, default message)
_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached (sim)."),
    "unavailable": (503, "server_error", "service_unavailable", "The server is unavailable."),
    "overloaded": (503, "server_error", "overloaded", "The engine is currently overloaded."),
    "server_error": (500, "server_error", None, "The server had an error processing the request."),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 210000 tokens. Please reduce the length of the messages.",
    ),
    "not_found": (404, "invalid_request_error", "model_not_found", "The model does not exist."),
    "invalid_request": (400, "invalid_request_error", None, "Invalid request."),
}


class _Function(BaseModel):
    name: str
    arguments: str = ""


class _ToolCall(BaseModel):
    id: str
    type: str = "function"
    function: _Function


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[_Message]
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool | None = None


def error_response(error: ModelError) -> JSONResponse:
    status, type_, code, default = _ERRORS.get(error.kind, _ERRORS["server_error"])
    body = {"message": error.message or default, "type": type_, "param": error.param, "code": code}
    return JSONResponse({"error": body}, status_code=status, headers=retry_headers(error))


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content)
    return content or ""


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw


def to_conversation(req: ChatRequest) -> Conversation:
    conv = Conversation()
    for msg in req.messages:
        if msg.role in ("system", "developer"):
            conv.system += _text(msg.content)
        elif msg.role == "tool":
            conv.turns.append(Turn("tool", _text(msg.content), tool_call_id=msg.tool_call_id))
        elif msg.role == "assistant":
            calls = [
                ToolCall(c.function.name, _arguments(c.function.arguments), c.id)
                for c in msg.tool_calls or []
            ]
            conv.turns.append(Turn("assistant", _text(msg.content), tool_calls=calls))
        else:
            conv.turns.append(Turn("user", _text(msg.content)))
    return conv


def _render_call(call: ToolCall) -> dict[str, Any]:
    args = call.args if isinstance(call.args, str) else json.dumps(call.args)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": args}}


def render(req: ChatRequest, reply: Reply, raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [_render_call(c) for c in reply.tool_calls]
    if reply.refusal:
        message["refusal"] = reply.refusal
    prompt, completion = usage(raw, reply)
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": "tool_calls" if reply.tool_calls else "stop",
        "logprobs": None,
    }
    return {
        "id": response_id("chatcmpl-", raw),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _parse(raw: bytes) -> ChatRequest:
    try:
        req = ChatRequest.model_validate_json(raw)
    except ValidationError as exc:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelError("invalid_request", f"Invalid request body: {message}") from exc
    return req


STREAM_CHUNK = 16  # characters of text a streamed chunk carries


async def stream(req: ChatRequest, reply: Reply, raw: bytes) -> AsyncIterator[bytes]:
    """The reply as OpenAI's `chat.completion.chunk` events, as the real API sends them."""
    import asyncio

    from sim import settings

    pace = settings.current().sim_stream_ms / 1000
    whole = render(req, reply, raw)
    head = {k: whole[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def event(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps(head | {'choices': [choice]} | more)}\n\n".encode()

    yield event({"role": "assistant", "content": ""})
    text = reply.text or ""
    for start in range(0, len(text), STREAM_CHUNK):
        if pace:
            await asyncio.sleep(pace)
        if reply.cut and start >= len(text) // 2:
            raise ConnectionAbortedError("cut_stream: the reply stops half-way")
        yield event({"content": text[start : start + STREAM_CHUNK]})
    calls = whole["choices"][0]["message"].get("tool_calls") or []
    if calls:
        yield event({"tool_calls": [c | {"index": i} for i, c in enumerate(calls)]})
    if reply.refusal:
        yield event({"refusal": reply.refusal})
    yield event({}, whole["choices"][0]["finish_reason"])
    if (req.model_extra or {}).get("stream_options", {}).get("include_usage"):
        yield f"data: {json.dumps(head | {'choices': [], 'usage': whole['usage']})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def router(book: FaultBook) -> APIRouter:
    api = APIRouter(tags=["openai"])

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            req = _parse(raw)
            conv = to_conversation(req)
            reply = await run_model(
                book, req.model, request.headers.get(FAULT_HEADER), conv, "call"
            )
        except ModelError as exc:
            return error_response(exc)
        if req.stream:
            return StreamingResponse(stream(req, reply, raw), media_type="text/event-stream")
        return JSONResponse(render(req, reply, raw))

    return api
