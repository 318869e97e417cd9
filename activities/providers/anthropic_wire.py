"""The Anthropic Messages wire format (Anthropic itself and compatible servers)."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage
from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import LLMReply, LLMRequest, Message, ToolCall, Usage
from durable_agents.activities.providers.common import classify_status, error

_CONTEXT_MARKERS = ("prompt is too long", "context window", "too many tokens")


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls
    ]
    return blocks


def to_wire(request: LLMRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages in Anthropic's shape: tool results ride in user turns, roles alternate."""
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters}
        for t in request.tools
    ]
    return messages, tools


def from_wire(reply: AnthropicMessage) -> LLMReply:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in reply.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            if not isinstance(block.input, dict):
                raise error(
                    f.MALFORMED_MODEL_OUTPUT,
                    f"the input of tool call {block.name!r} must be a JSON object, "
                    f"got {block.input!r}",
                )
            calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input))
    return LLMReply(
        message=Message(role="assistant", content="\n".join(texts), tool_calls=calls),
        usage=Usage(input_tokens=reply.usage.input_tokens, output_tokens=reply.usage.output_tokens),
        model=reply.model,
        finish_reason=reply.stop_reason or "",
    )


def classify(exc: Exception, provider: str = "anthropic") -> ApplicationError:
    """Map an error of the `anthropic` client onto the taxonomy."""
    if isinstance(exc, anthropic.APITimeoutError):
        return error(f.TIMEOUT, f"{provider} did not answer in time: {exc}")
    if isinstance(exc, anthropic.APIConnectionError):
        return error(f.PROVIDER_UNAVAILABLE, f"cannot reach {provider}: {exc}")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        text = str(exc.message).lower()
        hit = status == 413 or (status == 400 and any(m in text for m in _CONTEXT_MARKERS))
        # 529 "overloaded" is Anthropic's own word for unavailable.
        return classify_status(provider, status, exc.message, exc.response.headers, hit)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return error(f.MALFORMED_MODEL_OUTPUT, f"{provider} sent a reply we cannot read: {exc}")
    return error(f.PROVIDER_UNAVAILABLE, f"{provider} call failed: {exc!r}")
