"""GenAI spans and metrics for the activities (OpenTelemetry semantic conventions for GenAI).

Recorded only where work really happens, in activities: a replayed workflow runs no activity, so
it emits no span and counts no token twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agents._routes import Route
from durable_agents._vocab.schemas import LLMReply, LLMRequest, ToolRequest

tracer = trace.get_tracer("durable_agents")


@contextmanager
def _span(name: str, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[Span]:
    """A span that records a failure as `error.type` (the taxonomy's type) and an error status."""
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        try:
            yield span
        except BaseException as exc:
            failure = exc.type if isinstance(exc, ApplicationError) and exc.type else None
            span.set_attribute("error.type", failure or type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:300]))
            raise


@contextmanager
def llm_call(route: Route, request: LLMRequest) -> Iterator[list[LLMReply]]:
    """A `chat` span around one model call; append the reply to the yielded list."""
    info = activity.info()
    replies: list[LLMReply] = []
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": route.provider,
        "gen_ai.request.model": route.model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.conversation.id": info.workflow_id,
        "durable_agents.agent": request.agent,
        "durable_agents.turn": request.turn,
        "durable_agents.attempt": info.attempt,
    }
    started = time.monotonic()
    with _span(f"chat {route.model}", SpanKind.CLIENT, attributes) as span:
        try:
            yield replies
        finally:
            elapsed_ms = int((time.monotonic() - started) * 1000)
            labels = {"agent": request.agent or "-", "model": route.model}
            meter = activity.metric_meter()
            meter.create_histogram("durable_agents_llm_latency", "model call latency", "ms").record(
                elapsed_ms, labels
            )
        for reply in replies:
            span.set_attribute("gen_ai.response.model", reply.model or route.model)
            span.set_attribute("gen_ai.usage.input_tokens", reply.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", reply.usage.output_tokens)
            span.set_attribute("gen_ai.response.finish_reasons", [reply.finish_reason or "stop"])
            tokens = meter.create_counter("durable_agents_llm_tokens", "tokens used", "tokens")
            tokens.add(reply.usage.input_tokens, {**labels, "direction": "input"})
            tokens.add(reply.usage.output_tokens, {**labels, "direction": "output"})


@contextmanager
def tool_call(request: ToolRequest, side_effect: str) -> Iterator[Span]:
    """An `execute_tool` span around one tool call."""
    who = request.identity
    call_id = request.result.tool_call_id if request.result else request.idempotency_key
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": request.tool,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.conversation.id": who.workflow_id,
        "durable_agents.agent": who.agent,
        "durable_agents.principal": who.principal,
        "durable_agents.side_effect": side_effect,
        "durable_agents.idempotency_key": request.idempotency_key,
    }
    with _span(f"execute_tool {request.tool}", SpanKind.INTERNAL, attributes) as span:
        yield span
