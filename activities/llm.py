"""The `call_llm` activity: one model turn on the provider the route names.

Provider SDK retries are off (`max_retries=0`): Temporal's retry policy is the only retry loop,
and each failure is classified onto the taxonomy so the workflow can choose a strategy. A circuit
breaker per provider and model (activities/circuit.py) makes calls to a failing model fail fast.

Routes `scripted:<name>` are served in-process by the models a worker was given
(`DurableAgentsPlugin(agents, models=[...])`, e.g. `durable_agents.testing.ScriptedModel`): the
plugin registers `ModelCalls(models).call_llm` under the same activity name, so the workflow is
the same and nothing is looked up in a global registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agents._routes import (
    ModelProvider,
    Route,
    allowed_endpoints,
    checked_route,
)
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import LLMReply, LLMRequest
from durable_agents.activities import circuit, observe
from durable_agents.activities.conversation import resolve, store_reply
from durable_agents.activities.heartbeat import heartbeating
from durable_agents.activities.live_text import LiveText
from durable_agents.activities.providers.common import error
from durable_agents.errors import InvalidRoute
from durable_agents.settings import current

if TYPE_CHECKING:
    import anthropic
    import openai

# The provider SDKs (and their wire modules) are imported on a worker's first call to each:
# importing both costs a worker ~3.5 s of start-up on 2 cores (anthropic alone ~3 s), paid
# by every worker process even when it serves neither provider.

COMPATIBLE_KEY = "none"  # what compatible servers without auth expect (llama.cpp, Ollama, vLLM)


@dataclass(frozen=True)
class Models:
    """What one worker's model calls reach beyond the built-in providers: the in-process models
    it serves (`scripted:<name>`) and the model servers its plugins name (`<name>:<model>`)."""

    local: Mapping[str, LocalModel] = field(default_factory=dict)
    providers: Mapping[str, ModelProvider] = field(default_factory=dict)

    def route(self, text: str) -> Route:
        """The route resolved and allowed, or InvalidRoute: a provider the worker's operators
        name (DURABLE_AGENTS_MODEL_PROVIDERS) is theirs to trust; an address a route or a plugin
        names must be an allowed model endpoint."""
        settings = current()
        allowed = allowed_endpoints(settings.model_endpoints)
        return checked_route(text, self.providers, settings.model_providers, allowed)


def _key(route: Route) -> str:
    if route.named:
        # A key the provider's definition names by variable (api_key_env), else none.
        named = current().model_providers.get(route.provider)
        variable = named.api_key_env if named else None
        return (os.environ.get(variable) if variable else None) or COMPATIBLE_KEY
    if route.provider in ("openai-compatible", "anthropic-compatible"):
        # The base URL comes from the route, i.e. from whoever started the run: never hand it the
        # worker's OpenAI key. Local servers (Ollama, vLLM) accept any key.
        return COMPATIBLE_KEY
    settings = current()
    if route.provider == "openai":
        variable, secret = "OPENAI_API_KEY", settings.openai_api_key
    else:
        variable, secret = "ANTHROPIC_API_KEY", settings.anthropic_api_key
    if secret is None:
        raise error(
            f.AUTHENTICATION_FAILED,
            f"no API key for {route.provider}: set {variable} in the worker's environment",
        )
    return secret.get_secret_value()


# Clients are pooled per event loop: one bound to a closed loop would fail every call.
@lru_cache(maxsize=32)
def _openai_client(base_url: str | None, key: str, loop: int) -> openai.AsyncOpenAI:
    import openai

    # Let Temporal own retries.
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)


@lru_cache(maxsize=32)
def _anthropic_client(base_url: str | None, key: str, loop: int) -> anthropic.AsyncAnthropic:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0)


def _base_url(route: Route) -> str | None:
    return route.base_url  # None: the provider's own (openai, anthropic)


def _timeout() -> float:
    limit = activity.info().start_to_close_timeout
    if not limit:
        return 60.0
    # Leave a margin so our client times out (classified) before Temporal does (opaque):
    # a second, or a quarter of a short limit.
    seconds = limit.total_seconds()
    return seconds - min(1.0, seconds / 4)


async def _call_openai(route: Route, request: LLMRequest) -> LLMReply:
    from durable_agents.activities.providers import openai_wire

    client = _openai_client(_base_url(route), _key(route), id(asyncio.get_running_loop()))
    messages, tools = openai_wire.to_wire(request)
    _spelled_out(messages)
    # `tool_choice: auto` is OpenAI's default with tools, but llama.cpp's Python server
    # (llama-cpp-python, chatml-function-calling) leaves the tools out of the prompt without it.
    extra: dict[str, Any] = {"tools": tools, "tool_choice": "auto"} if tools else {}
    fresh: openai.AsyncOpenAI | None = None
    try:
        completion = None
        if request.live_text:
            completion = await _streamed(client, route, request, messages, extra)
            if completion is None:
                # A stream that ended with no chunk: llama-cpp-python's server answers 200,
                # then fails inside the stream when it cannot stream a tool call or the prompt
                # is past its context window, and drops the connection. Asked again unstreamed
                # (on a new connection), it answers the tool call, or says the window is
                # exceeded (a 400 the taxonomy maps).
                client = fresh = _openai_client.__wrapped__(_base_url(route), _key(route), 0)
        if completion is None:
            completion = await client.chat.completions.create(
                model=route.model,
                messages=messages,  # type: ignore[arg-type]
                **_limit(route, request),
                extra_headers=request.extra_headers or None,
                timeout=_timeout(),
                **extra,
            )
    except ApplicationError:
        raise
    except Exception as exc:
        raise openai_wire.classify(exc, route.provider) from exc
    finally:
        if fresh is not None:
            await fresh.close()
    reply = _read(openai_wire.from_wire, completion, route)
    if getattr(completion, "usage", None) is None:
        # llama-cpp-python's server sends none with a streamed reply (it ignores
        # stream_options): say so rather than count the turn as free in silence (an agent
        # whose budget must count every token there turns live text off).
        reply.degraded.append(
            f"{route.provider} ({route.model}) sent no token usage with this reply: its tokens "
            "are not counted in the run's usage and budget"
            + (" (turn live text off to have them counted)" if request.live_text else "")
        )
    return reply


def _limit(route: Route, request: LLMRequest) -> dict[str, Any]:
    """The reply's length limit under the name the server reads: OpenAI's own API takes
    `max_completion_tokens` (its reasoning models refuse `max_tokens`); compatible servers read
    `max_tokens` (llama-cpp-python's ignores the newer name and writes on to its context's end)."""
    key = "max_completion_tokens" if route.provider == "openai" else "max_tokens"
    return {key: request.max_tokens}


def _spelled_out(messages: list[dict[str, Any]]) -> None:
    """An assistant turn of tool calls only gets `""` for content, not null: OpenAI takes
    either, llama-cpp-python's server refuses null (HTTP 500, a validation error)."""
    for item in messages:
        if item.get("tool_calls") and item.get("content") is None:
            item["content"] = ""


async def _streamed(
    client: openai.AsyncOpenAI,
    route: Route,
    request: LLMRequest,
    messages: Any,
    extra: dict[str, Any],
) -> Any:
    """The completion, streamed: its text is published as it comes on the run's live stream
    (topic `text`, `activities/live_text.py`), each piece naming this attempt, so a watcher
    drops what an attempt that failed had written. The whole completion is returned, or None
    for a stream that ended without a chunk."""
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    async with LiveText(request) as text:
        chunks = await client.chat.completions.create(
            model=route.model,
            messages=messages,
            **_limit(route, request),
            extra_headers=request.extra_headers or None,
            timeout=_timeout(),
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        seen = 0
        async for chunk in chunks:
            seen += 1
            state.handle_chunk(chunk)
            piece = chunk.choices[0].delta.content if chunk.choices else None
            if piece:
                text.publish(piece)
    if not seen:
        activity.logger.warning(
            "%s ended its stream of %s's reply without a chunk: asking again unstreamed",
            route.provider,
            route.model,
        )
        return None
    try:
        return state.get_final_completion()
    except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
        # The SDK refuses a reply cut at max_tokens (or filtered) when it assembles a stream;
        # unstreamed, the same reply is read as it is, its finish_reason saying so.
        return exc.completion


async def _call_anthropic(route: Route, request: LLMRequest) -> LLMReply:
    from durable_agents.activities.providers import anthropic_wire

    client = _anthropic_client(_base_url(route), _key(route), id(asyncio.get_running_loop()))
    messages, tools = anthropic_wire.to_wire(request)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    try:
        if request.live_text:
            reply = await _streamed_anthropic(client, route, request, messages, extra)
        else:
            reply = await client.messages.create(
                model=route.model,
                system=request.system,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                extra_headers=request.extra_headers or None,
                timeout=_timeout(),
                **extra,
            )
    except ApplicationError:
        raise
    except Exception as exc:
        raise anthropic_wire.classify(exc, route.provider) from exc
    return _read(anthropic_wire.from_wire, reply, route)


async def _streamed_anthropic(
    client: anthropic.AsyncAnthropic,
    route: Route,
    request: LLMRequest,
    messages: Any,
    extra: dict[str, Any],
) -> Any:
    """The message, streamed, its text published as it comes (see `_streamed`). A tool's
    input is read strictly from the JSON the stream sent: the SDK's lenient reading of partial
    JSON would make a cut-off input look whole."""
    import json

    raw: dict[int, str] = {}
    async with (
        LiveText(request) as text,
        client.messages.stream(
            model=route.model,
            system=request.system,
            messages=messages,
            max_tokens=request.max_tokens,
            extra_headers=request.extra_headers or None,
            timeout=_timeout(),
            **extra,
        ) as stream,
    ):
        async for event in stream:
            if event.type == "text" and event.text:
                text.publish(event.text)
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                raw[event.index] = raw.get(event.index, "") + event.delta.partial_json
        message = await stream.get_final_message()
    for index, block in enumerate(message.content):
        if block.type == "tool_use":
            try:
                block.input = json.loads(raw.get(index) or "{}")
            except json.JSONDecodeError as exc:
                raise error(
                    f.MALFORMED_MODEL_OUTPUT,
                    f"the input of tool call {block.name!r} is not valid JSON ({exc.msg}): "
                    f"{raw.get(index)!r}",
                ) from None
    return message


def _read(parse: Callable[[Any], LLMReply], raw: Any, route: Route) -> LLMReply:
    """Parse a reply; one that does not fit the wire format is the model's malformed output."""
    try:
        return parse(raw)
    except ApplicationError:
        raise
    except (ValidationError, TypeError, ValueError, AttributeError) as exc:
        raise error(
            f.MALFORMED_MODEL_OUTPUT, f"{route.provider} sent a reply we cannot read: {exc}"
        ) from None


class LocalModel(Protocol):
    """A model served in the worker's own process under the route `scripted:<name>`."""

    @property
    def name(self) -> str: ...

    async def complete(self, request: LLMRequest) -> LLMReply:
        """The reply to `request` (whose conversation is content), with its usage."""
        ...


class ModelCalls:
    """The `call_llm` activity of one worker: providers by route, plus the in-process models
    it was given (`scripted:<name>`)."""

    def __init__(
        self, models: Iterable[LocalModel] = (), providers: Mapping[str, ModelProvider] = {}
    ) -> None:
        local: dict[str, LocalModel] = {}
        for model in models:
            if model.name in local:
                raise ValueError(f"two scripted models are named {model.name!r}: rename one")
            local[model.name] = model
        self._models = Models(local, dict(providers))

    @activity.defn(name="call_llm")
    async def call_llm(self, request: LLMRequest) -> LLMReply:
        """Ask the model for the next step of the conversation (see the module `call_llm`)."""
        return await _turn(request, self._models)


@activity.defn
async def call_llm(request: LLMRequest) -> LLMReply:
    """Ask the model for the next step of the conversation.

    A conversation sent by reference is rebuilt from the message store first, and the reply is
    stored under its hash: only the reply goes back into history.
    """
    return await _turn(request, Models())


async def _turn(request: LLMRequest, models: Models) -> LLMReply:
    resolved = await resolve(request)
    reply = await complete(resolved.request, models)
    reply.degraded = [*resolved.degraded, *reply.degraded]
    if request.conversation is not None:
        await store_reply(resolved.head, reply.message)
    activity.logger.info(
        "model %s answered: %s input / %s output tokens",
        reply.model,
        reply.usage.input_tokens,
        reply.usage.output_tokens,
        extra={"agent": request.agent, "turn": request.turn},
    )
    return reply


async def complete(request: LLMRequest, models: Models | None = None) -> LLMReply:
    """One model call with the conversation as content (`models`: the worker's own)."""
    models = models or Models()
    try:
        route = models.route(request.route)
    except InvalidRoute as exc:
        # An address off the allowlist too: nothing is sent, and the run parks with the reason.
        raise ApplicationError(str(exc), type=f.INVALID_REQUEST, non_retryable=True) from None
    if route.provider == "scripted":
        return await _call_local(route, request, models.local)
    call = _call_anthropic if route.wire_format == "anthropic" else _call_openai
    with observe.llm_call(route, request) as replies:
        # While this model's circuit is open the call fails fast (non-retryable
        # ProviderUnavailable) without touching the network, so the workflow falls back to the
        # next model at once.
        reply = await circuit.registry().call(
            (route.provider, route.base_url or "", route.model),
            lambda: heartbeating(call(route, request), f"waiting for {route.model}"),
        )
        reply.provider = route.provider
        replies.append(reply)
    return reply


async def _call_local(
    route: Route, request: LLMRequest, models: Mapping[str, LocalModel]
) -> LLMReply:
    model = models.get(route.model)
    if model is None:
        given = ", ".join(sorted(models)) or "none"
        raise ApplicationError(
            f"no scripted model {route.model!r} on this worker (given: {given}): pass it in "
            "DurableAgentsPlugin(agents, models=[...])",
            type=f.INVALID_REQUEST,
            non_retryable=True,
        )
    # No circuit breaker: there is no remote to protect, and a test's failures must not carry
    # over into the next test's calls.
    with observe.llm_call(route, request) as replies:
        # Heartbeating like a provider's call: a slow script is not a dead worker.
        reply = await heartbeating(model.complete(request), f"waiting for {route.model}")
        reply.provider, reply.model = route.provider, reply.model or route.model
        replies.append(reply)
    return reply
