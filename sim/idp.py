"""The sim world's identity provider, and how its company systems check the tokens it signs.

Every agent is a client of the provider with its own secret. Before a side effect the worker
exchanges the agent's credentials for a token (OAuth 2.0 Token Exchange, RFC 8693, naming the
person with Keycloak's `requested_subject`): subject the principal, actor the agent and its run
(`act`), the scopes the tool needs, the system called as audience, a few minutes' lifetime,
the call's idempotency key as token id. A system verifies the signature against the JWKS, the
issuer, audience, expiry and scope, and binds each token id to one idempotency key.

    POST /idp/token                            client_credentials or token exchange
    GET  /idp/jwks                             the public signing keys
    GET  /idp/.well-known/openid-configuration where the rest is
    POST /idp/clients                          register a client (the sim's admin console)
    GET  /idp/issued?run=RUN                   what was issued (no token values)

Secrets are stored as SHA-256 digests; the signing key lives in the sim's database, so tokens
outlive a restart of the sim. The shipped agents' clients are written to a credentials file
beside the database (mode 0600), the file a worker reads (`DURABLE_AGENTS_CREDENTIALS_FILE`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel, Field

from sim.db import Database

ISSUER = "urn:durable-agents:sim:idp"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
LIFETIME_S = 300
CREDENTIALS_FILE = "credentials.toml"
ALGORITHM = "RS256"
# The systems that accept tokens: the audience a tool names is one of these.
AUDIENCES = frozenset({"hr", "it", "mail", "payments", "tickets", "crm", "docs"})

IDP_SCHEMA = """
CREATE TABLE IF NOT EXISTS idp_keys (
    kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_clients (
    client_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, agent TEXT NOT NULL,
    scopes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_issued (
    jti TEXT PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL,
    audience TEXT NOT NULL, scope TEXT NOT NULL, run TEXT NOT NULL,
    issued_at TEXT NOT NULL, expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idp_issued_run ON idp_issued (run);
CREATE TABLE IF NOT EXISTS token_uses (
    jti TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL, first_seen TEXT NOT NULL
);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="sim-idp"'} if status == 401 else None
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


class Registration(BaseModel, extra="forbid"):
    """A client to register: the agent it is, and the scopes it may ask for."""

    agent: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=100)
    client_id: str | None = Field(default=None, min_length=1, max_length=200)


@dataclass(frozen=True)
class Client:
    client_id: str
    agent: str
    scopes: frozenset[str]


class IdentityProvider:
    """Clients, the signing key, issuing and checking tokens, over the sim's database."""

    def __init__(self, db: Database, lifetime_s: int = LIFETIME_S) -> None:
        self._db = db
        db.apply_schema(IDP_SCHEMA)
        self.lifetime_s = lifetime_s  # tests shorten it (an expired token)
        self._key = self._signing_key()
        self.jwks = {"keys": [self._key.as_dict(private=False)]}
        self._verify_keys = KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]
        self._lock = threading.Lock()

    def _signing_key(self) -> RSAKey:
        rows = self._db.query("SELECT jwk FROM idp_keys ORDER BY created_at DESC LIMIT 1")
        if rows:
            return RSAKey.import_key(json.loads(rows[0]["jwk"]))
        kid = uuid.uuid4().hex[:16]
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_keys (kid, jwk, created_at) VALUES (?, ?, ?)",
                (kid, json.dumps(key.as_dict(private=True)), now_iso()),
            )
        return key

    # -- clients -------------------------------------------------------------------------

    def register(self, agent: str, scopes: list[str], client_id: str | None = None,
                 secret: str | None = None) -> tuple[str, str]:  # fmt: skip
        """Register (or re-key) the client of an agent; returns its id and secret."""
        client_id = client_id or f"agent-{agent}"
        secret = secret or secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_clients (client_id, secret_sha256, agent, scopes) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET "
                "secret_sha256 = excluded.secret_sha256, agent = excluded.agent, "
                "scopes = excluded.scopes",
                (client_id, _digest(secret), agent, " ".join(sorted(set(scopes)))),
            )
        return client_id, secret

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        rows = self._db.query("SELECT * FROM idp_clients WHERE client_id = ?", (client_id,))
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], _digest(secret)):
            return None
        row = rows[0]
        return Client(row["client_id"], row["agent"], frozenset(row["scopes"].split()))

    def bootstrap(self, path: Path, agents: dict[str, tuple[str, ...]]) -> None:
        """Give each agent a client and write the credentials a worker reads; secrets already
        in the file are kept (a restarted sim keeps its workers' credentials)."""
        known: dict[str, Any] = tomllib.loads(path.read_text()) if path.exists() else {}
        for agent, scopes in sorted(agents.items()):
            entry = known.get(agent) if isinstance(known.get(agent), dict) else None
            client_id = entry.get("client_id") if entry else None
            secret = entry.get("client_secret") if entry else None
            if not (isinstance(client_id, str) and isinstance(secret, str)):
                client_id, secret = None, None
            client_id, secret = self.register(agent, list(scopes), client_id, secret)
            known[agent] = {"client_id": client_id, "client_secret": secret}
        lines = [
            "# Written by the sim: each agent's client at the sim's identity provider.",
            "# Workers read it (DURABLE_AGENTS_CREDENTIALS_FILE); keep it out of version control.",
        ]
        for agent, entry in sorted(known.items()):
            if isinstance(entry, dict):
                lines.append(f"\n[{json.dumps(agent)}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")

    # -- tokens --------------------------------------------------------------------------

    def issue(self, client: Client, form: dict[str, str]) -> JSONResponse:
        """The token endpoint's answer for an authenticated client."""
        grant = form.get("grant_type", "")
        scopes = form.get("scope", "").split()
        if grant not in (TOKEN_EXCHANGE, "client_credentials"):
            return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")
        if not set(scopes) <= client.scopes:
            extra = sorted(set(scopes) - client.scopes)
            return _oauth_error(
                400, "invalid_scope", f"{client.client_id} may not ask for {', '.join(extra)}"
            )
        audience = form.get("audience", "")
        if audience and audience not in AUDIENCES:
            return _oauth_error(400, "invalid_target", f"no system {audience!r} here")
        now = int(time.time())
        jti = form.get("durable_agents_token_id") or uuid.uuid4().hex
        run = form.get("durable_agents_run", "")
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "iat": now,
            "exp": now + self.lifetime_s,
            "jti": jti,
            "client_id": client.client_id,
            "scope": " ".join(scopes),
        }
        if grant == TOKEN_EXCHANGE:
            subject = form.get("requested_subject", "").strip()
            if not subject or not audience:
                return _oauth_error(
                    400, "invalid_request", "token exchange needs requested_subject and audience"
                )
            claims |= {
                "sub": subject,
                "aud": audience,
                "act": {"sub": client.client_id, "agent": client.agent, "run": run},
            }
        else:
            claims |= {"sub": client.client_id, "aud": audience or client.client_id}
        with self._lock, self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM idp_issued WHERE jti = ?", (jti,)).fetchone()
            if row is not None and (row["client_id"], row["audience"], row["run"]) != (
                client.client_id,
                claims["aud"],
                run,
            ):
                return _oauth_error(
                    400, "invalid_request", f"token id {jti!r} was issued for another call"
                )
            conn.execute(
                "INSERT OR REPLACE INTO idp_issued (jti, client_id, subject, audience, scope, "
                "run, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (jti, client.client_id, claims["sub"], claims["aud"], claims["scope"], run,
                 now_iso(), claims["exp"]),
            )  # fmt: skip
        token = jwt.encode({"alg": ALGORITHM, "kid": self._key.kid}, claims, self._key)
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "scope": claims["scope"],
        }
        if grant == TOKEN_EXCHANGE:
            body["issued_token_type"] = ACCESS_TOKEN_TYPE
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def issued(self, run: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE run = ?", (run,)) if run else ("", ())
        rows = self._db.query(f"SELECT * FROM idp_issued {where} ORDER BY issued_at", args)
        return [dict(r) for r in rows]

    # -- what a system checks ------------------------------------------------------------

    def check(self, authorization: str | None, audience: str, scope: str) -> Grant | Refusal:
        """Verify a bearer token for `audience` needing `scope`: signature (JWKS), issuer,
        audience, expiry; 401 when it is not a valid token for this system, 403 when it is
        but does not carry the scope."""
        kind, _, token = (authorization or "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return Refusal(401, "a bearer token is required (Authorization: Bearer <token>)")
        try:
            decoded = jwt.decode(token.strip(), self._verify_keys, algorithms=[ALGORITHM])
            JWTClaimsRegistry(
                iss={"essential": True, "value": ISSUER},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                sub={"essential": True},
                jti={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            return Refusal(401, f"the token is not valid for {audience}: {exc}")
        claims = decoded.claims
        granted = str(claims.get("scope", "")).split()
        if scope not in granted:
            return Refusal(403, f"the token grants {' '.join(granted) or 'no scope'}, not {scope}")
        act = claims.get("act")
        act = act if isinstance(act, dict) else {}
        return Grant(
            agent=str(act.get("agent") or claims.get("client_id", "")),
            principal=str(claims["sub"]),
            scope=" ".join(granted),
            token_id=str(claims["jti"]),
        )


@dataclass(frozen=True)
class Grant:
    """What a system accepted: recorded beside the effect in its ledger."""

    agent: str
    principal: str
    scope: str
    token_id: str


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """client_secret_basic, or client_secret_post."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        return unquote_plus(user), unquote_plus(password)
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    return None


def idp_router(idp: IdentityProvider) -> APIRouter:
    router = APIRouter(prefix="/idp", tags=["identity"])

    @router.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        auth = _client_auth(request, form)
        client = idp.authenticate(*auth) if auth else None
        if client is None:
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        return idp.issue(client, form)

    @router.get("/jwks")
    def jwks() -> dict[str, Any]:
        return idp.jwks

    @router.get("/.well-known/openid-configuration")
    def discovery(request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/") + "/idp"
        return {
            "issuer": ISSUER,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    @router.post("/clients")
    def register(body: Registration) -> dict[str, str]:
        client_id, secret = idp.register(body.agent, body.scopes, body.client_id)
        return {"client_id": client_id, "client_secret": secret}

    @router.get("/issued")
    def issued(run: str | None = None) -> dict[str, Any]:
        return {"issued": idp.issued(run)}

    return router


def shipped_clients() -> dict[str, tuple[str, ...]]:
    """Each sim-world agent and the scopes its client may ask for (its standing grant)."""
    from sim.agents import AGENTS

    return {spec.name: spec.scopes() for spec in AGENTS.agents}
