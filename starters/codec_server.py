"""The codec server: the Temporal UI and CLI show encrypted payloads to whoever holds the token.

It speaks Temporal's remote-codec protocol (`POST /encode`, `POST /decode`, a JSON body
`{"payloads": [...]}`), binds to loopback, and answers only
- requests with the token, as `Authorization: Bearer <token>` (the CLI:
  `temporal workflow show --codec-endpoint URL --codec-auth "Bearer <token>"`) or in the path,
  `/t/<token>/decode` (the dev UI, which has no login to carry a header: `agentctl server
  --codec-endpoint http://127.0.0.1:8888/t/<token>`);
- browsers from the configured origins (the local Temporal UI by default), and other clients only
  from loopback addresses.
"""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from durable_agents._codec import EncryptionCodec, Keyring
from durable_agents.errors import CodecConfigError

DEFAULT_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(keyring: Keyring, token: str, origins: tuple[str, ...] = DEFAULT_ORIGINS) -> FastAPI:
    codec = EncryptionCodec(keyring)
    app = FastAPI(title="durable-agents codec server", docs_url=None, redoc_url=None)

    def cors(origin: str | None) -> dict[str, str]:
        if origin is None or origin not in origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Vary": "Origin",
        }

    def refused(request: Request, path_token: str | None) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return JSONResponse({"detail": f"origin {origin} is not allowed"}, status_code=403)
        if origin is None and not _loopback(request.client.host if request.client else None):
            return JSONResponse({"detail": "only loopback clients"}, status_code=403)
        header = request.headers.get("authorization", "")
        given = path_token or header.removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse(
                {"detail": "a valid token is required (Authorization: Bearer <token>)"},
                status_code=401,
                headers=cors(origin),
            )
        return None

    async def handle(request: Request, action: str, path_token: str | None = None) -> Response:
        if (refusal := refused(request, path_token)) is not None:
            return refusal
        origin = request.headers.get("origin")
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            return JSONResponse({"detail": f"not a Payloads body: {exc}"}, status_code=400)
        try:
            done = await (codec.encode if action == "encode" else codec.decode)(payloads.payloads)
        except CodecConfigError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422, headers=cors(origin))
        body = json_format.MessageToJson(Payloads(payloads=done))
        return Response(body, media_type="application/json", headers=cors(origin))

    @app.options("/{path:path}")
    async def preflight(request: Request, path: str) -> Response:
        origin = request.headers.get("origin")
        if origin not in origins:
            return Response(status_code=403)
        return Response(status_code=204, headers=cors(origin))

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await handle(request, "encode")

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await handle(request, "decode")

    @app.post("/t/{path_token}/encode")
    async def encode_t(request: Request, path_token: str) -> Response:
        return await handle(request, "encode", path_token)

    @app.post("/t/{path_token}/decode")
    async def decode_t(request: Request, path_token: str) -> Response:
        return await handle(request, "decode", path_token)

    return app
