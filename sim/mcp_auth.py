"""The ticket system's MCP endpoint checks tokens as its REST endpoints do.

An ASGI wrapper around the endpoint reads each JSON-RPC request: a `tools/call` of a tool that
changes state needs a bearer token from the identity provider for the ticket system with the
tool's scope, checked before the MCP server sees the request (signature, issuer, audience,
expiry, scope: `IdentityProvider.check`). A refusal is an HTTP 401 or 403 with the RFC 6750
challenge, as MCP's authorization spec has it; what the token proved goes to the tool in the
request's state, and the ledger records it beside the effect (and binds the token to the call's
idempotency key). Listing tools and reading a ticket need no token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sim.idp import IdentityProvider, Refusal, bearer_challenge
from sim.ledger import Action

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# Bytes of a JSON-RPC request read to find what it calls (the rest is the server's to refuse).
MAX_BODY = 1_000_000


def guarded(app: ASGIApp, idp: IdentityProvider, actions: dict[str, Action]) -> ASGIApp:
    """`app` behind the token check for the tools named in `actions`."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body")) and len(body) <= MAX_BODY
        action = _called(body, actions)
        if action is not None:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            checked = idp.check(headers.get("authorization"), action.audience, action.scope)
            if isinstance(checked, Refusal):
                answer = bearer_challenge(checked.status, checked.message, realm="sim")
                await answer(scope, receive, send)
                return
            scope.setdefault("state", {})["grant"] = checked
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return endpoint


def _called(body: bytes, actions: dict[str, Action]) -> Action | None:
    """The guarded action a JSON-RPC request (or batch) calls, if any."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    for request in parsed if isinstance(parsed, list) else [parsed]:
        if isinstance(request, dict) and request.get("method") == "tools/call":
            params = request.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str) and name in actions:
                return actions[name]
    return None
