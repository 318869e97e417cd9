"""POST /v1/messages in the Anthropic Messages wire format (non-streaming).

Only translation lives here: content blocks to the neutral Conversation, Reply to content blocks,
ModelError to Anthropic's error body, so the real `anthropic` client raises its usual exceptions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
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
    if req.stream:
        raise ModelError("invalid_request", "stream: streaming is not supported by the sim")
    return req


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
        return JSONResponse(render(req, reply, raw))

    return api
