"""The `call_llm` activity: one model turn on the provider the route names.

Provider SDK retries are off (`max_retries=0`): Temporal's retry policy is the only retry loop,
and each failure is classified onto the taxonomy so the workflow can choose a strategy. A circuit
breaker per provider and model (activities/circuit.py) makes calls to a failing model fail fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import anthropic
import openai
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import circuit, observe
from activities.conversation import resolve, store_reply
from activities.heartbeat import heartbeating
from activities.providers import anthropic_wire, openai_wire
from activities.providers.common import error
from activities.settings import get_settings
from durable_agents._routes import InvalidRoute, Route, parse_route
from workflows import failures as f
from workflows.models import LLMReply, LLMRequest

SIM_KEY = "sim-key"  # the sim accepts any key; real keys come only from the environment
COMPATIBLE_KEY = "none"  # what OpenAI-compatible servers without auth expect


def _key(route: Route) -> str:
    if route.provider in ("sim-openai", "sim-anthropic"):
        return SIM_KEY
    if route.provider == "openai-compatible":
        # The base URL comes from the route, i.e. from whoever started the run: never hand it the
        # worker's OpenAI key. Local servers (Ollama, vLLM) accept any key.
        return COMPATIBLE_KEY
    settings = get_settings()
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
    # Let Temporal own retries.
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)


@lru_cache(maxsize=32)
def _anthropic_client(base_url: str | None, key: str, loop: int) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0)


def _base_url(route: Route) -> str | None:
    sim = get_settings().sim_url.rstrip("/")
    return {"sim-openai": f"{sim}/v1", "sim-anthropic": sim}.get(route.provider, route.base_url)


def _timeout() -> float:
    limit = activity.info().start_to_close_timeout
    if not limit:
        return 60.0
    # Leave a margin so our client times out (classified) before Temporal does (opaque):
    # a second, or a quarter of a short limit.
    seconds = limit.total_seconds()
    return seconds - min(1.0, seconds / 4)


async def _call_openai(route: Route, request: LLMRequest) -> LLMReply:
    client = _openai_client(_base_url(route), _key(route), id(asyncio.get_running_loop()))
    messages, tools = openai_wire.to_wire(request)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    try:
        completion = await client.chat.completions.create(
            model=route.model,
            messages=messages,  # type: ignore[arg-type]
            max_completion_tokens=request.max_tokens,
            extra_headers=request.extra_headers or None,
            timeout=_timeout(),
            **extra,
        )
    except Exception as exc:
        raise openai_wire.classify(exc, route.provider) from exc
    return _read(openai_wire.from_wire, completion, route)


async def _call_anthropic(route: Route, request: LLMRequest) -> LLMReply:
    client = _anthropic_client(_base_url(route), _key(route), id(asyncio.get_running_loop()))
    messages, tools = anthropic_wire.to_wire(request)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    try:
        reply = await client.messages.create(
            model=route.model,
            system=request.system,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=request.max_tokens,
            extra_headers=request.extra_headers or None,
            timeout=_timeout(),
            **extra,
        )
    except Exception as exc:
        raise anthropic_wire.classify(exc, route.provider) from exc
    return _read(anthropic_wire.from_wire, reply, route)


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


@activity.defn
async def call_llm(request: LLMRequest) -> LLMReply:
    """Ask the model for the next step of the conversation.

    A conversation sent by reference is rebuilt from the message store first, and the reply is
    stored under its hash: only the reply goes back into history.
    """
    resolved = await resolve(request)
    reply = await complete(resolved.request)
    reply.degraded = resolved.degraded
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


async def complete(request: LLMRequest) -> LLMReply:
    """One model call with the conversation as content."""
    try:
        route = parse_route(request.route)
    except InvalidRoute as exc:
        raise ApplicationError(str(exc), type=f.INVALID_REQUEST, non_retryable=True) from None
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
