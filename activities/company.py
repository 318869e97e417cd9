"""Implementations of the company-system tools: HTTP calls carrying the idempotency key.

Each function gets its validated input and a context; it returns the system's JSON answer,
which `run_tool` then checks against the tool's output model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.settings import get_settings
from workflows import failures as f
from workflows.models import Identity


@dataclass(frozen=True)
class ToolContext:
    """What a tool implementation may know about the call: who, and under which key."""

    idempotency_key: str
    identity: Identity
    timeout: float


Implementation = Callable[[BaseModel, ToolContext], Awaitable[dict[str, Any]]]


@lru_cache(maxsize=8)
def _pooled(base_url: str, loop: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url)


def _client() -> httpx.AsyncClient:
    # One pooled client per event loop and address (a client outlives no loop).
    return _pooled(get_settings().company_base_url, id(asyncio.get_running_loop()))


def _failure(response: httpx.Response, action: str) -> ApplicationError:
    text = f"{action}: the system answered HTTP {response.status_code}: {response.text[:500]}"
    if response.status_code >= 500 or response.status_code == 429:
        return ApplicationError(text, type=f.TOOL_TRANSIENT)
    return ApplicationError(text, type=f.TOOL_REJECTED, non_retryable=True)


async def _post(path: str, action: str, args: BaseModel, ctx: ToolContext) -> dict[str, Any]:
    headers = {
        "Idempotency-Key": ctx.idempotency_key,
        "X-Agent": f"{ctx.identity.agent}/{ctx.identity.agent_version}",
        "X-Principal": ctx.identity.principal,
    }
    try:
        response = await _client().post(
            path, json=args.model_dump(mode="json"), headers=headers, timeout=ctx.timeout
        )
    except httpx.HTTPError as exc:
        raise ApplicationError(f"{action}: {exc!r}", type=f.TOOL_TRANSIENT) from exc
    if response.is_error:
        raise _failure(response, action)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApplicationError(
            f"{action}: the system answered with no JSON object: {response.text[:200]!r}",
            type=f.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        )
    return body


def _endpoint(path: str, action: str) -> Implementation:
    async def call(args: BaseModel, ctx: ToolContext) -> dict[str, Any]:
        return await _post(path, action, args, ctx)

    return call


IMPLEMENTATIONS: dict[str, Implementation] = {
    "create_mailbox": _endpoint("/hr/mailboxes", "create_mailbox"),
    "order_laptop": _endpoint("/it/laptops", "order_laptop"),
    "send_email": _endpoint("/mail/messages", "send_email"),
    "echo": _endpoint("/tools/echo", "echo"),
    "read_document": _endpoint("/docs/read", "read_document"),
    "verify_customer": _endpoint("/crm/verify", "verify_customer"),
    "check_refund_eligibility": _endpoint("/payments/eligibility", "check_refund_eligibility"),
    "place_hold": _endpoint("/payments/holds", "place_hold"),
    "release_hold": _endpoint("/payments/holds/release", "release_hold"),
    "issue_refund": _endpoint("/payments/refunds", "issue_refund"),
    "update_ticket": _endpoint("/tickets/update", "update_ticket"),
}
