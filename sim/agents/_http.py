"""How the sim world's tools reach its company systems: HTTP calls carrying the idempotency
key and the call's bearer token.

`post` sends a tool's validated input and returns the system's JSON answer, which `run_tool`
then checks against the tool's output model. Failures map onto the taxonomy: 5xx and 429 are
transient, 401 AuthenticationFailed, 403 PermissionDenied, other errors a rejection, an answer
that is no JSON object a contract violation.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from durable_agents import ToolContext
from durable_agents.errors import FailureType
from sim.settings import current


@lru_cache(maxsize=8)
def _pooled(base_url: str, loop: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url)


def _client() -> httpx.AsyncClient:
    # One pooled client per event loop and address (a client outlives no loop).
    return _pooled(current().company_base_url, id(asyncio.get_running_loop()))


def _failure(response: httpx.Response, action: str) -> ApplicationError:
    text = f"{action}: the system answered HTTP {response.status_code}: {response.text[:500]}"
    status = response.status_code
    if status >= 500 or status == 429:
        return ApplicationError(text, type=FailureType.TOOL_TRANSIENT)
    # 401: the system did not accept the token (forged, expired, for another system, used for
    # another call); 403: it did, but the token does not grant what the call needs.
    kind = {401: FailureType.AUTHENTICATION_FAILED, 403: FailureType.PERMISSION_DENIED}.get(
        status, FailureType.TOOL_REJECTED
    )
    return ApplicationError(text, type=kind, non_retryable=True)


async def post(path: str, args: BaseModel, ctx: ToolContext) -> Any:
    """POST `args` to the company system at `path` under the call's idempotency key, with the
    call's token (the tool's `audience`) as the proof of who acts for whom."""
    action = ctx.tool
    headers = ctx.headers()
    try:
        response = await _client().post(
            path, json=args.model_dump(mode="json"), headers=headers, timeout=ctx.timeout
        )
    except httpx.HTTPError as exc:
        raise ApplicationError(f"{action}: {exc!r}", type=FailureType.TOOL_TRANSIENT) from exc
    if response.is_error:
        raise _failure(response, action)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApplicationError(
            f"{action}: the system answered with no JSON object: {response.text[:200]!r}",
            type=FailureType.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        )
    return body
