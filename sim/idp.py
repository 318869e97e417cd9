"""The sim world's identity provider, and how its company systems check the tokens it signs.

Every agent is a client of the provider with its own secret. Before a side effect the worker
exchanges the agent's credentials for a token (OAuth 2.0 Token Exchange, RFC 8693, naming the
person with Keycloak's `requested_subject`): subject the principal, actor the agent and its run
(`act`), the scopes the tool needs, the system called as audience, a few minutes' lifetime,
the call's idempotency key as token id. A system verifies the signature against the JWKS, the
issuer, audience, expiry and scope, and binds each token id to one idempotency key.

    POST /idp/token                            client_credentials, token exchange, and
                                               people's grants (sim.people, sim.signin)
    GET  /idp/jwks                             the public keys: the signing key and the
                                               keys it replaced (tokens they signed verify)
    GET  /idp/.well-known/openid-configuration where the rest is
    POST /idp/clients                          register a client (admin credential)
    POST /idp/keys/rotate                      sign with a new key from now on (admin)
    GET  /idp/issued?run=RUN                   what was issued (no token values)

Secrets are stored as SHA-256 digests; the signing keys live in the sim's database, so tokens
outlive a restart of the sim. The shipped agents' clients are written to a credentials file
beside the database (mode 0600), the file a worker reads (`DURABLE_AGENTS_CREDENTIALS_FILE`);
the admin credential to `idp-admin.secret` (0600) there too. A client may ask only for the
scopes and audiences it was registered with, and nobody without the admin credential can
register a client, re-key one or register a second client under an agent's name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
ADMIN_FILE = "idp-admin.secret"
ALGORITHM = "RS256"
# The systems that accept tokens: the audience a tool names is one of these.
AUDIENCES = frozenset({"hr", "it", "mail", "payments", "tickets", "crm", "docs"})

IDP_SCHEMA = """
CREATE TABLE IF NOT EXISTS idp_keys (
    kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_clients (
    client_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, agent TEXT NOT NULL,
    scopes TEXT NOT NULL, audiences TEXT NOT NULL DEFAULT ''
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


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="sim-idp"'} if status == 401 else None
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def bearer_challenge(status: int, message: str, realm: str = "sim-idp") -> JSONResponse:
    """401 or 403 with the RFC 6750 challenge that says what was wrong with the token."""
    code = "invalid_token" if status == 401 else "insufficient_scope"
    challenge = f'Bearer realm="{realm}", error="{code}"'
    return JSONResponse(
        {"detail": message}, status_code=status, headers={"WWW-Authenticate": challenge}
    )


class Registration(BaseModel, extra="forbid"):
    """A client to register: the agent it is, and the scopes and systems it may ask for."""

    agent: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=100)
    audiences: list[str] = Field(default_factory=list, max_length=20)
    client_id: str | None = Field(default=None, min_length=1, max_length=200)


# A shipped agent's client: the scopes and the audiences it may ask for.
ShippedClient = tuple[tuple[str, ...], tuple[str, ...]]


class Conflict(ValueError):
    """A registration that would take over or shadow a client that exists."""


@dataclass(frozen=True)
class Client:
    client_id: str
    agent: str
    scopes: frozenset[str]
    audiences: frozenset[str] = frozenset()


class IdentityProvider:
    """Clients, the signing key, issuing and checking tokens, over the sim's database."""

    def __init__(self, db: Database, lifetime_s: int = LIFETIME_S) -> None:
        self._db = db
        db.apply_schema(IDP_SCHEMA)
        have = {row["name"] for row in db.query("PRAGMA table_info(idp_clients)")}
        if "audiences" not in have:  # a database made before clients had audiences
            with db.transaction() as conn:
                conn.execute(
                    "ALTER TABLE idp_clients ADD COLUMN audiences TEXT NOT NULL DEFAULT ''"
                )
        self.lifetime_s = lifetime_s  # tests shorten it (an expired token)
        self._lock = threading.Lock()
        # Whether an agent may act for a person with these scopes (their grant: sim.people);
        # None says why not. Until people are known, nobody is impersonated.
        self.delegation: Callable[[str, str, list[str]], str | None] = (
            lambda subject, agent, scopes: f"{subject} has granted {agent} nothing"
        )
        self._admin_digest = ""
        if not db.query("SELECT kid FROM idp_keys LIMIT 1"):
            self.rotate()
        self._load_keys()

    def _load_keys(self) -> None:
        """The newest key signs; every key made verifies (so a rotation breaks no token)."""
        rows = self._db.query("SELECT jwk FROM idp_keys ORDER BY created_at DESC, rowid DESC")
        keys = [RSAKey.import_key(json.loads(r["jwk"])) for r in rows]
        self._key = keys[0]
        self.jwks = {"keys": [k.as_dict(private=False) for k in keys]}
        self._verify_keys = KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]

    def rotate(self) -> str:
        """Sign with a new key from now on; the old ones stay in the JWKS. Returns its kid."""
        kid = uuid.uuid4().hex[:16]
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_keys (kid, jwk, created_at) VALUES (?, ?, ?)",
                (kid, json.dumps(key.as_dict(private=True)), now_iso()),
            )
        if hasattr(self, "_key"):
            self._load_keys()
        return kid

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"alg": ALGORITHM, "kid": self._key.kid, "typ": "JWT"}, claims, self._key)

    def verify(self, token: str, audience: str) -> dict[str, Any] | None:
        """The claims of a token this provider signed for `audience`, if it is valid now."""
        try:
            return self._claims(token, audience, jti=False)
        except (JoseError, ValueError):
            return None

    def _claims(self, token: str, audience: str, jti: bool = True) -> dict[str, Any]:
        """Signature (any of the provider's keys), issuer, audience, expiry, subject; raises
        JoseError or ValueError."""
        decoded = jwt.decode(token.strip(), self._verify_keys, algorithms=[ALGORITHM])
        essential: dict[str, Any] = {
            "iss": {"essential": True, "value": ISSUER},
            "aud": {"essential": True, "value": audience},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if jti:
            essential["jti"] = {"essential": True}
        JWTClaimsRegistry(**essential).validate(decoded.claims)
        return dict(decoded.claims)

    # -- the admin credential ----------------------------------------------------------------

    def bootstrap_admin(self, path: Path) -> None:
        """Read the admin credential from `path`, writing a new one (0600) if there is none."""
        secret = path.read_text().strip() if path.exists() else ""
        if len(secret) < 20:
            secret = secrets.token_urlsafe(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secret + "\n")
        self._admin_digest = _digest(secret)

    def is_admin(self, authorization: str | None) -> bool:
        kind, _, secret = (authorization or "").partition(" ")
        return (
            bool(self._admin_digest)
            and kind.lower() == "bearer"
            and hmac.compare_digest(_digest(secret.strip()), self._admin_digest)
        )

    # -- clients -------------------------------------------------------------------------

    def register(self, agent: str, scopes: list[str], audiences: list[str],
                 client_id: str | None = None, secret: str | None = None,
                 replace: bool = False) -> tuple[str, str]:  # fmt: skip
        """Register the client of an agent; returns its id and secret. Without `replace` (the
        sim's own bootstrap), an existing client id or an agent another client already is
        raises Conflict: nobody re-keys or shadows a client through registration."""
        client_id = client_id or f"agent-{agent}"
        secret = secret or secrets.token_urlsafe(32)
        unknown = sorted(set(audiences) - AUDIENCES)
        if unknown:
            raise Conflict(f"no system {', '.join(unknown)} here; systems: {sorted(AUDIENCES)}")
        with self._db.transaction() as conn:
            if not replace:
                taken = conn.execute(
                    "SELECT client_id, agent FROM idp_clients WHERE client_id = ? OR agent = ?",
                    (client_id, agent),
                ).fetchone()
                if taken is not None:
                    raise Conflict(
                        f"client {taken['client_id']!r} (agent {taken['agent']!r}) exists: "
                        "a client is registered once; an operator of the provider rotates its "
                        "secret"
                    )
            conn.execute(
                "INSERT INTO idp_clients (client_id, secret_sha256, agent, scopes, audiences) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET "
                "secret_sha256 = excluded.secret_sha256, agent = excluded.agent, "
                "scopes = excluded.scopes, audiences = excluded.audiences",
                (client_id, _digest(secret), agent, " ".join(sorted(set(scopes))),
                 " ".join(sorted(set(audiences)))),
            )  # fmt: skip
        return client_id, secret

    def agent_scopes(self, agent: str) -> frozenset[str] | None:
        """The scopes the agent's client may ask for; None if no client is that agent."""
        rows = self._db.query("SELECT scopes FROM idp_clients WHERE agent = ?", (agent,))
        return frozenset(rows[0]["scopes"].split()) if rows else None

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        rows = self._db.query("SELECT * FROM idp_clients WHERE client_id = ?", (client_id,))
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], _digest(secret)):
            return None
        row = rows[0]
        return Client(
            row["client_id"],
            row["agent"],
            frozenset(row["scopes"].split()),
            frozenset(row["audiences"].split()),
        )

    def bootstrap(
        self, path: Path, agents: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    ) -> None:
        """Give each agent a client and write the credentials a worker reads; secrets already
        in the file are kept (a restarted sim keeps its workers' credentials)."""
        known: dict[str, Any] = tomllib.loads(path.read_text()) if path.exists() else {}
        for agent, (scopes, audiences) in sorted(agents.items()):
            entry = known.get(agent) if isinstance(known.get(agent), dict) else None
            client_id = entry.get("client_id") if entry else None
            secret = entry.get("client_secret") if entry else None
            if not (isinstance(client_id, str) and isinstance(secret, str)):
                client_id, secret = None, None
            client_id, secret = self.register(
                agent, list(scopes), list(audiences), client_id, secret, replace=True
            )
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
            return oauth_error(400, "unsupported_grant_type", f"grant_type {grant[:80]!r}")
        if not set(scopes) <= client.scopes:
            extra = sorted(set(scopes) - client.scopes)
            return oauth_error(
                400, "invalid_scope", f"{client.client_id} may not ask for {', '.join(extra)}"
            )
        audience = form.get("audience", "")
        if audience and audience not in AUDIENCES:
            return oauth_error(400, "invalid_target", f"no system {audience[:80]!r} here")
        if audience and audience not in client.audiences:
            return oauth_error(
                400,
                "invalid_target",
                f"{client.client_id} may not ask for tokens for {audience!r}; its systems: "
                f"{', '.join(sorted(client.audiences)) or 'none'}",
            )
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
                return oauth_error(
                    400, "invalid_request", "token exchange needs requested_subject and audience"
                )
            # No impersonation: the agent acts for the person only within their grant (to it,
            # or to the root agent a sub-agent works for).
            granted_to = form.get("durable_agents_granted_to", "").strip() or client.agent
            refused = self.delegation(subject, granted_to, scopes)
            if refused is not None:
                return oauth_error(400, "consent_required", refused)
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
                return oauth_error(
                    400, "invalid_request", f"token id {jti!r} was issued for another call"
                )
            conn.execute(
                "INSERT OR REPLACE INTO idp_issued (jti, client_id, subject, audience, scope, "
                "run, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (jti, client.client_id, claims["sub"], claims["aud"], claims["scope"], run,
                 now_iso(), claims["exp"]),
            )  # fmt: skip
        token = self.sign(claims)
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
            claims = self._claims(token, audience)
        except (JoseError, ValueError) as exc:
            return Refusal(401, f"the token is not valid for {audience}: {exc}")
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


def shipped_clients() -> dict[str, ShippedClient]:
    """Each sim-world agent, the scopes its client may ask for (its standing grant) and the
    systems its tools and MCP servers call (the audiences it may ask tokens for)."""
    from sim.agents import AGENTS

    clients = {}
    for spec in AGENTS.agents:
        systems = {t.audience for t in spec.tools} | {m.audience for m in spec.mcp_servers}
        clients[spec.name] = (spec.scopes(), tuple(sorted(a for a in systems if a)))
    return clients
