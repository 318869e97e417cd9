"""A worker interceptor that keeps a signal or update with the wrong number of payloads out of
the agent workflow's handlers.

Each handler takes one raw payload (`workflows.inbound`). The SDK hands a handler its payloads
typed only when their count matches, so `temporal workflow signal --input a --input b` would
call it with two decoded values, and the TypeError would fail the workflow task on every retry.
Here such a signal is refused and recorded by the run, and such an update refused with a
named error, before any handler runs.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.worker import (
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from durable_agents._vocab.live import TEXT_TOPIC, LiveEvent
from durable_agents.workflows.inbound import MessageRefused
from durable_agents.workflows.live import PUBLISH_SIGNAL


def _too_many(args: Sequence[Any], name: str) -> str | None:
    """Why a message for one of the workflow's one-payload handlers (its `MESSAGES`) cannot
    be handled, if it cannot; other workflows and handlers are left alone."""
    if len(args) <= 1 or name not in getattr(workflow.instance(), "MESSAGES", ()):
        return None
    return f"{len(args)} payloads: send one JSON object"


# Pieces of text one publish may carry (call_llm sends what 250 ms of streaming brought).
MAX_PIECES = 1_000


def _outside_publish(name: str, args: Sequence[Any]) -> str | None:
    """A run's steps on its live stream are the run's own: from outside it takes only the
    model's text as it is written (topic `text`, published by `call_llm`), each item a text
    `LiveEvent` that fits its schema, so nothing a watcher reads can be what it cannot read."""
    if name != PUBLISH_SIGNAL or not hasattr(workflow.instance(), "live"):
        return None
    items = getattr(args[0], "items", None) if len(args) == 1 else None
    if not isinstance(items, list) or not 0 < len(items) <= MAX_PIECES:
        return f"a publish carries 1 to {MAX_PIECES} pieces of model text"
    for item in items:
        if getattr(item, "topic", None) != TEXT_TOPIC:
            return "the run publishes its own progress: its stream takes only model text"
        try:
            payload = Payload()
            payload.ParseFromString(base64.b64decode(str(item.data), validate=True))
            event = workflow.payload_converter().from_payload(payload, LiveEvent)
        except Exception:  # noqa: BLE001 - whatever does not decode is refused, never a failed task
            return "a piece of model text that is not a text LiveEvent"
        if not isinstance(event, LiveEvent) or event.kind != "text":
            return "a piece of model text that is not a text LiveEvent"
    return None


class _Inbound(WorkflowInboundInterceptor):
    async def handle_signal(self, input: HandleSignalInput) -> None:
        why = _too_many(input.args, input.signal) or _outside_publish(input.signal, input.args)
        if why is not None:
            workflow.instance().refuse(input.signal, why)
            return
        await super().handle_signal(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        _refuse_update(input)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        _refuse_update(input)  # a replayed update skips its validator
        return await super().handle_update_handler(input)


def _refuse_update(input: HandleUpdateInput) -> None:
    """The update goes back to its sender as the run's other refusals do (MessageRefused)."""
    why = _too_many(input.args, input.update)
    if why is not None:
        raise MessageRefused(why).as_update_error()


class InboundGuard(Interceptor):
    """Install on every worker that runs the agent workflow (and on replayers)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound
