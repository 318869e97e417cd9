"""Scripted models: a model is a function from the conversation to the next reply, in-process.

Tests of an agent need a model that answers the same way every time, with no server and no
HTTP. A `ScriptedModel` is served by the worker itself under the route `scripted:<name>` once it
is given to the plugin (`DurableAgentsPlugin(agents, models=[...])`); `durable_agents.testing`
does that for you.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import LLMReply, LLMRequest, Message, ToolCall, Usage

Reply = str | ToolCall | Sequence[ToolCall] | Message
"""What a script answers: final text, one tool call or several, or a whole assistant message."""
Script = Callable[[list[Message]], Reply | Awaitable[Reply]]
"""The conversation so far (the task message first) → the model's next reply."""

CHARS_PER_TOKEN = 4  # a rough count, so that token budgets apply to scripted runs too


def call(tool: str, **arguments: Any) -> ToolCall:
    """A tool call for a script's reply; its id is given when the reply is made."""
    return ToolCall(id="", name=tool, arguments=arguments)


def task_input(messages: Sequence[Message]) -> dict[str, Any]:
    """The run's validated input, as the agent's first message carries it."""
    first = next((m.content for m in messages if m.role == "user"), "")
    _, found, text = first.partition("\n\nInput:\n")
    data = json.loads(text) if found else {}
    return data if isinstance(data, dict) else {}


def results(messages: Sequence[Message], tool: str) -> list[dict[str, Any]]:
    """Every result of `tool` so far, oldest first, as the model read them (JSON objects; a
    refused approval reads `{"approval": "rejected", "reason": ...}`)."""
    found = []
    for message in messages:
        if message.role == "tool" and message.name == tool:
            try:
                value = json.loads(message.content)
            except ValueError:
                value = {"text": message.content}
            found.append(value if isinstance(value, dict) else {"value": value})
    return found


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ScriptedModel:
    """A model that answers by script, in the worker's own process (route `scripted:<name>`).

        def pay(messages: list[Message]) -> Reply:
            if not results(messages, "lookup_invoice"):
                return call("lookup_invoice", invoice_id="INV-1")
            return "done"

        ScriptedModel("invoice", pay)

    A script may raise an `ApplicationError` with a type of the failure taxonomy (e.g.
    `RateLimited`) to act out a failing provider; anything else it raises parks the run, with
    the error as the reason.
    """

    name: str
    """The model's name: an agent reaches it with the route `scripted:<name>`."""
    script: Script
    """The conversation so far → the next reply (text, tool calls, or a message)."""

    @property
    def route(self) -> str:
        """`scripted:<name>`: put it in an agent's `model_route`."""
        return f"scripted:{self.name}"

    async def complete(self, request: LLMRequest) -> LLMReply:
        """The script's reply to the request, with a rough count of the tokens it took."""
        try:
            reply = self.script(list(request.messages))
            if inspect.isawaitable(reply):
                reply = await reply
            message = _message(reply, request.turn, len(request.messages))
        except ApplicationError:
            raise
        except Exception as exc:  # noqa: BLE001  (a script's bug: show it, do not retry it)
            raise ApplicationError(
                f"the script of scripted model {self.name!r} failed: {type(exc).__name__}: {exc}",
                type=f.INVALID_REQUEST,
                non_retryable=True,
            ) from None
        said = message.content + "".join(json.dumps(c.arguments) for c in message.tool_calls)
        return LLMReply(
            message=message,
            usage=Usage(input_tokens=tokens(_read(request)), output_tokens=max(1, tokens(said))),
            model=self.name,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )


def _message(reply: Reply, turn: int, seen: int) -> Message:
    if isinstance(reply, Message):
        message = reply.model_copy()
    elif isinstance(reply, str):
        message = Message(role="assistant", content=reply)
    elif isinstance(reply, ToolCall):
        message = Message(role="assistant", tool_calls=[reply])
    elif isinstance(reply, Sequence) and all(isinstance(c, ToolCall) for c in reply):
        message = Message(role="assistant", tool_calls=list(reply))
    else:
        raise TypeError(f"a script answers text, tool calls or a Message, not {reply!r}")
    if message.role != "assistant":
        raise TypeError(f"a script's message must be role='assistant', not {message.role!r}")
    # Ids are part of the tools' idempotency keys: unique within the run, turn after turn.
    message.tool_calls = [
        c if c.id else c.model_copy(update={"id": f"call-{turn}-{seen}-{i}"})
        for i, c in enumerate(message.tool_calls)
    ]
    return message


def _read(request: LLMRequest) -> str:
    """Everything the model reads: the system prompt, the tools and the conversation."""
    parts = [request.system, *(json.dumps(t.model_dump()) for t in request.tools)]
    parts += [m.content + json.dumps([c.arguments for c in m.tool_calls]) for m in request.messages]
    return "".join(parts)
