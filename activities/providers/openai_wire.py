"""The OpenAI Chat Completions wire format (OpenAI itself and compatible servers)."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import LLMReply, LLMRequest, Message, ToolCall, Usage
from durable_agents.activities.providers.common import classify_status, error

_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window")


def to_wire(request: LLMRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request's messages and tools in OpenAI's shape."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for m in request.messages:
        if m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in m.tool_calls
                ]
            messages.append(item)
        elif m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            messages.append({"role": "user", "content": m.content})
    tools = [{"type": "function", "function": t.model_dump(mode="json")} for t in request.tools]
    return messages, tools


def parse_arguments(name: str, raw: str | None) -> dict[str, Any]:
    """A tool call's arguments as a dict, or MalformedModelOutput saying exactly what is wrong."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise error(
            f.MALFORMED_MODEL_OUTPUT,
            f"the arguments of tool call {name!r} are not valid JSON ({exc.msg} at "
            f"position {exc.pos}): {raw!r}",
        ) from None
    if not isinstance(value, dict):
        raise error(
            f.MALFORMED_MODEL_OUTPUT,
            f"the arguments of tool call {name!r} must be a JSON object, got {raw!r}",
        )
    return value


def from_wire(completion: ChatCompletion) -> LLMReply:
    if not completion.choices:
        raise error(f.MALFORMED_MODEL_OUTPUT, "the reply has no choices")
    choice = completion.choices[0]
    msg = choice.message
    calls = [
        ToolCall(
            id=c.id,
            name=c.function.name,
            arguments=parse_arguments(c.function.name, c.function.arguments),
        )
        for c in (msg.tool_calls or [])
        if c.type == "function"
    ]
    refusal = getattr(msg, "refusal", None)
    usage = completion.usage
    return LLMReply(
        message=Message(role="assistant", content=msg.content or refusal or "", tool_calls=calls),
        usage=Usage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
        model=completion.model,
        finish_reason="refusal" if refusal else (choice.finish_reason or ""),
    )


def classify(exc: Exception, provider: str = "openai") -> ApplicationError:
    """Map an error of the `openai` client onto the taxonomy."""
    if isinstance(exc, openai.APITimeoutError):
        return error(f.TIMEOUT, f"{provider} did not answer in time: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return error(f.PROVIDER_UNAVAILABLE, f"cannot reach {provider}: {exc}")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        code = str(body.get("code") or "")
        text = f"{code} {exc.message}".lower()
        if exc.status_code == 429 and code == "insufficient_quota":
            # Out of credit is a billing problem an operator must fix, not a wait.
            return error(f.AUTHENTICATION_FAILED, f"{provider}: {exc.message}")
        hit = exc.status_code in (400, 413) and any(m in text for m in _CONTEXT_MARKERS)
        return classify_status(provider, exc.status_code, exc.message, exc.response.headers, hit)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        return error(f.MALFORMED_MODEL_OUTPUT, f"{provider} sent a reply we cannot read: {exc}")
    return error(f.PROVIDER_UNAVAILABLE, f"{provider} call failed: {exc!r}")
