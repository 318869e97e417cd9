"""People at the sim's identity provider: who they are, how they sign in, and their proofs.

The people of the sim world's directory each have a password (written, mode 0600, to
`people.toml` beside the database, as the agents' credentials are). They sign in to `agentctl`
(a public client) with the OAuth 2.0 Device Authorization Grant (RFC 8628): the CLI asks for a
device code, the person opens the sign-in page, types the code, their name and password,
consents to what the client asks, and the CLI's polling gets an access token (for this
provider only) and a refresh token.

With that access token the CLI asks for a *proof* before each message it sends into a run: a
token exchange (RFC 8693, `subject_token` = the person's access token) whose
`authorization_details` (RFC 9396) name the run, the action and what it decides (approval id,
verdict, the arguments' digest, a hash of the reason or text). The proof is a JWT for the
workers' audience, valid for minutes: it says "this person, signed in, asked for exactly this",
authorises nothing else, and can be checked offline against the provider's keys as evidence.

    POST /idp/device_authorization    a device code and the code the person types
    GET  /idp/device                  the sign-in page (then the consent page)
    POST /idp/token                   grant_type device_code, refresh_token, token exchange
    GET  /idp/userinfo                who the bearer of a person's access token is
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from sim.db import Database

PEOPLE_FILE = "people.toml"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
# The public clients people sign in to, and what each may ask for.
PUBLIC_CLIENTS = {"agentctl": "the durable-agents command line (agentctl)"}
PERSON_SCOPES = ("openid", "runs")
SCOPE_WORDS = {
    "openid": "know who you are",
    "runs": "start runs, decide approvals, message and operate runs as you",
}
# The audience of proofs: the workers that verify them (DURABLE_AGENTS_PROOF_AUDIENCE there).
PROOF_AUDIENCE = "durable-agents"
ACCESS_LIFETIME_S = 600
REFRESH_LIFETIME_S = 30 * 86_400
PROOF_LIFETIME_S = 300
DEVICE_LIFETIME_S = 600
POLL_INTERVAL_S = 1
MAX_SIGN_IN_FAILURES = 5

PEOPLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS idp_people (
    name TEXT PRIMARY KEY, salt TEXT NOT NULL, password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_devices (
    device_hash TEXT PRIMARY KEY, user_code TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, expires_at INTEGER NOT NULL, status TEXT NOT NULL,
    subject TEXT, failures INTEGER NOT NULL DEFAULT 0, last_poll REAL NOT NULL DEFAULT 0,
    consent TEXT
);
CREATE TABLE IF NOT EXISTS idp_refresh (
    token_hash TEXT PRIMARY KEY, subject TEXT NOT NULL, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, expires_at INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    family TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS idp_proofs (
    jti TEXT PRIMARY KEY, subject TEXT NOT NULL, run TEXT NOT NULL, action TEXT NOT NULL,
    details TEXT NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idp_proofs_run ON idp_proofs (run);
CREATE TABLE IF NOT EXISTS idp_authz (
    ticket_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    challenge TEXT NOT NULL, state TEXT NOT NULL, scope TEXT NOT NULL, expires_at INTEGER NOT NULL,
    subject TEXT, code_hash TEXT, used INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS idp_grants (
    subject TEXT NOT NULL, agent TEXT NOT NULL, scopes TEXT NOT NULL, granted_at INTEGER NOT NULL,
    PRIMARY KEY (subject, agent)
);
"""

# The only characters of a user code: no vowels (no words), no look-alikes (RFC 8628 6.1).
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _hash_password(password: str, salt: str) -> str:
    return hashlib.scrypt(password.encode(), salt=salt.encode(), n=2**12, r=8, p=1).hex()


class OAuthError(Exception):
    """An answer of the token endpoint other than a token (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class ProofDetails(BaseModel):
    """One `authorization_details` entry of a proof: the message it is for, exactly."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["durable_agents"]
    run: str = Field(min_length=1, max_length=255)
    action: Literal["start", "decide", "message", "resume", "retry_turn", "abort"]
    approval_id: str | None = Field(default=None, pattern=r"^[a-z_]+-[0-9]{1,6}$")
    approve: StrictBool | None = None
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    edited_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    reason_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    text_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    agent: str | None = Field(default=None, max_length=200)
    input_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    settings_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] | None = Field(default=None, max_length=100)


def _loopback(uri: str) -> bool:
    """A native app's redirect (RFC 8252 7.3): http on the loopback address, any port."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Authorization:
    client_id: str
    redirect_uri: str
    challenge: str
    state: str
    scope: str
    subject: str | None = None


@dataclass(frozen=True)
class Device:
    device_hash: str
    user_code: str
    client_id: str
    scope: str
    status: str
    subject: str | None


class People:
    """Passwords, device sign-ins, refresh tokens and proofs, over the sim's database.

    `sign` makes a JWT with the provider's current key; `verify_access` checks a person's
    access token (the provider's own audience)."""

    def __init__(self, db: Database, issuer: str, sign: Any, verify_access: Any) -> None:
        self._db = db
        db.apply_schema(PEOPLE_SCHEMA)
        self._issuer = issuer
        self._sign = sign
        self._verify_access = verify_access
        self.services: frozenset[str] = frozenset()  # whom agents act for with no grant
        # The scopes an agent's client may ask for (None: no such agent): a grant stays within.
        self.agent_scopes: Callable[[str], frozenset[str] | None] = lambda agent: None

    # -- grants: what a person lets an agent do for them ---------------------------------

    def grant(self, subject: str, agent: str, scopes: list[str]) -> list[str]:
        """Add `scopes` to what `subject` lets `agent` do for them; all it may now do."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT scopes FROM idp_grants WHERE subject = ? AND agent = ?", (subject, agent)
            ).fetchone()
            held = set(row["scopes"].split()) if row else set()
            now = sorted(held | set(scopes))
            conn.execute(
                "INSERT OR REPLACE INTO idp_grants (subject, agent, scopes, granted_at) "
                "VALUES (?, ?, ?, ?)",
                (subject, agent, " ".join(now), int(time.time())),
            )
        return now

    def revoke(self, subject: str, agent: str) -> bool:
        with self._db.transaction() as conn:
            gone = conn.execute(
                "DELETE FROM idp_grants WHERE subject = ? AND agent = ?", (subject, agent)
            )
            return gone.rowcount > 0

    def grants(self, subject: str) -> dict[str, list[str]]:
        rows = self._db.query("SELECT * FROM idp_grants WHERE subject = ?", (subject,))
        return {r["agent"]: r["scopes"].split() for r in rows}

    def delegation(self, subject: str, agent: str, scopes: list[str]) -> str | None:
        """Why an agent may not act for `subject` with `scopes`, or None if it may: a service
        principal, or a person who granted that agent those scopes."""
        if subject in self.services:
            return None
        held = set(self.grants(subject).get(agent, []))
        missing = sorted(set(scopes) - held)
        if not held:
            return (
                f"{subject} has granted {agent} nothing (or revoked it): {subject} grants it "
                f"(`agentctl grant {agent} --scope ...`, or by starting a run of it)"
            )
        if missing:
            return (
                f"{subject} has not granted {agent} {' '.join(missing)}: {subject} grants it "
                f"(`agentctl grant {agent} --scope {' --scope '.join(missing)}`)"
            )
        return None

    # -- people --------------------------------------------------------------------------

    def bootstrap(self, path: Path, names: list[str]) -> None:
        """Give each person a password, kept in `path` (0600); passwords already there stay."""
        known: dict[str, Any] = tomllib.loads(path.read_text()) if path.exists() else {}
        for name in sorted(set(names)):
            password = known.get(name)
            if not isinstance(password, str) or len(password) < 12:
                password = secrets.token_urlsafe(18)
            salt = secrets.token_hex(16)
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO idp_people (name, salt, password_hash) "
                    "VALUES (?, ?, ?)",
                    (name, salt, _hash_password(password, salt)),
                )
            known[name] = password
        lines = [
            "# Written by the sim: the password of each person of the sim world at its identity",
            "# provider (they sign in with `agentctl login`). Keep it out of version control.",
        ]
        lines += [f"{json.dumps(n)} = {json.dumps(p)}" for n, p in sorted(known.items())]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")

    def check_password(self, name: str, password: str) -> str | None:
        """The person's name in normal form if the password is theirs."""
        name = name.strip().lower()
        rows = self._db.query("SELECT * FROM idp_people WHERE name = ?", (name,))
        if not rows:
            _hash_password(password, "x" * 32)  # the same work whether or not the name exists
            return None
        row = rows[0]
        ok = hmac.compare_digest(row["password_hash"], _hash_password(password, row["salt"]))
        return name if ok else None

    # -- device authorization (RFC 8628) -------------------------------------------------

    def start_device(self, client_id: str, scope: str) -> tuple[str, str]:
        """A new device code and user code for a public client."""
        if client_id not in PUBLIC_CLIENTS:
            raise OAuthError("invalid_client", f"no public client {client_id[:64]!r}", 401)
        asked = scope.split() or list(PERSON_SCOPES)
        unknown = sorted(set(asked) - set(PERSON_SCOPES))
        if unknown:
            raise OAuthError("invalid_scope", f"no scope {', '.join(unknown)} here")
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_devices (device_hash, user_code, client_id, scope, expires_at, "
                "status) VALUES (?, ?, ?, ?, ?, 'pending')",
                (_sha256(device_code), user_code, client_id, " ".join(asked),
                 int(time.time()) + DEVICE_LIFETIME_S),
            )  # fmt: skip
        return device_code, user_code

    def pending(self, user_code: str) -> Device | None:
        """The sign-in waiting for this user code, if it still waits."""
        code = "".join(c for c in user_code.upper() if c.isalnum())
        rows = self._db.query(
            "SELECT * FROM idp_devices WHERE user_code = ? AND status = 'pending' "
            "AND expires_at > ?",
            (code, int(time.time())),
        )
        if not rows:
            return None
        r = rows[0]
        return Device(r["device_hash"], r["user_code"], r["client_id"], r["scope"], r["status"],
                      r["subject"])  # fmt: skip

    def sign_in(self, device: Device, name: str, password: str) -> tuple[str, str] | None:
        """The person and a one-use consent ticket, or None (a wrong password counts; five
        end the sign-in)."""
        person = self.check_password(name, password)
        with self._db.transaction() as conn:
            if person is None:
                conn.execute(
                    "UPDATE idp_devices SET failures = failures + 1, status = CASE WHEN "
                    "failures + 1 >= ? THEN 'denied' ELSE status END WHERE device_hash = ?",
                    (MAX_SIGN_IN_FAILURES, device.device_hash),
                )
                return None
            ticket = secrets.token_urlsafe(24)
            conn.execute(
                "UPDATE idp_devices SET consent = ?, subject = ? WHERE device_hash = ?",
                (f"{_sha256(ticket)} {person}", person, device.device_hash),
            )
        return person, ticket

    def consent(self, ticket: str, allow: bool) -> tuple[str, bool] | None:
        """Finish a sign-in: the person and whether they allowed it; None for a bad ticket."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idp_devices WHERE consent LIKE ? AND status = 'pending' "
                "AND expires_at > ?",
                (f"{_sha256(ticket)} %", int(time.time())),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE idp_devices SET status = ?, consent = NULL WHERE device_hash = ?",
                ("approved" if allow else "denied", row["device_hash"]),
            )
            return row["subject"], allow

    def poll(self, client_id: str, device_code: str) -> dict[str, Any]:
        """The token endpoint's answer to a device's poll."""
        now = time.time()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idp_devices WHERE device_hash = ?", (_sha256(device_code),)
            ).fetchone()
            if row is None or row["client_id"] != client_id:
                raise OAuthError("invalid_grant", "unknown device code")
            if row["expires_at"] <= now and row["status"] == "pending":
                raise OAuthError("expired_token", "the sign-in was not finished in time")
            if row["status"] == "denied":
                raise OAuthError("access_denied", "the sign-in was refused")
            if row["status"] == "used":
                raise OAuthError("invalid_grant", "this device code was already used")
            if row["status"] == "pending":
                too_soon = now - row["last_poll"] < POLL_INTERVAL_S * 0.8
                conn.execute(
                    "UPDATE idp_devices SET last_poll = ? WHERE device_hash = ?",
                    (now, row["device_hash"]),
                )
                if too_soon:
                    raise OAuthError("slow_down", f"poll at most every {POLL_INTERVAL_S} s")
                raise OAuthError("authorization_pending", "the person has not signed in yet")
            conn.execute(
                "UPDATE idp_devices SET status = 'used' WHERE device_hash = ?",
                (row["device_hash"],),
            )
        return self._tokens(row["subject"], client_id, row["scope"])

    def refresh(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        """New tokens for a refresh token, which is used up (rotation). A used one that comes
        back was copied: its whole family (every token refreshed from the same sign-in) is
        revoked, so neither the thief's chain nor the owner's goes on without a new sign-in."""
        with self._db.transaction() as conn:  # committed whatever the answer
            row = conn.execute(
                "SELECT * FROM idp_refresh WHERE token_hash = ?", (_sha256(refresh_token),)
            ).fetchone()
            if row is not None and row["used"]:
                conn.execute("UPDATE idp_refresh SET used = 1 WHERE family = ?", (row["family"],))
            elif row is not None and row["client_id"] == client_id:
                conn.execute(
                    "UPDATE idp_refresh SET used = 1 WHERE token_hash = ?", (row["token_hash"],)
                )
        if row is None or row["client_id"] != client_id or row["used"]:
            raise OAuthError("invalid_grant", "the refresh token is not valid: sign in again")
        if row["expires_at"] <= time.time():
            raise OAuthError("invalid_grant", "the refresh token expired: sign in again")
        return self._tokens(row["subject"], client_id, row["scope"], row["family"])

    def revoke_refresh(self, refresh_token: str) -> None:
        """Sign-out (RFC 7009): the token's family is revoked."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT family FROM idp_refresh WHERE token_hash = ?", (_sha256(refresh_token),)
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE idp_refresh SET used = 1 WHERE family = ?", (row["family"],))

    def _tokens(
        self, subject: str, client_id: str, scope: str, family: str | None = None
    ) -> dict[str, Any]:
        now = int(time.time())
        access = self._sign(
            {
                "iss": self._issuer,
                "sub": subject,
                "aud": self._issuer,
                "client_id": client_id,
                "scope": scope,
                "iat": now,
                "exp": now + ACCESS_LIFETIME_S,
                "jti": secrets.token_hex(16),
                "token_use": "person",
            }
        )
        refresh = secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_refresh (token_hash, subject, client_id, scope, expires_at, "
                "family) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    _sha256(refresh),
                    subject,
                    client_id,
                    scope,
                    now + REFRESH_LIFETIME_S,
                    family or secrets.token_hex(8),
                ),  # fmt: skip
            )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_LIFETIME_S,
            "refresh_token": refresh,
            "scope": scope,
        }

    # -- authorization code with PKCE (RFC 6749 4.1, RFC 7636), loopback redirects ---------

    def start_authorization(self, params: dict[str, str]) -> tuple[str, Authorization]:
        """A pending authorization request and the ticket its pages carry; OAuthError for a
        request that cannot be answered by a redirect (bad client or redirect_uri)."""
        client_id, redirect = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id not in PUBLIC_CLIENTS:
            raise OAuthError("invalid_client", f"no public client {client_id[:64]!r}", 401)
        if not _loopback(redirect):
            raise OAuthError(
                "invalid_request",
                "redirect_uri must be a loopback address (http://127.0.0.1:PORT/…, RFC 8252)",
            )
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            raise OAuthError("invalid_request", "PKCE is required: code_challenge with S256")
        asked = params.get("scope", "").split() or list(PERSON_SCOPES)
        unknown = sorted(set(asked) - set(PERSON_SCOPES))
        if unknown:
            raise OAuthError("invalid_scope", f"no scope {', '.join(unknown)} here")
        ticket = secrets.token_urlsafe(24)
        request = Authorization(client_id, redirect, challenge, params.get("state", "")[:500],
                                " ".join(asked))  # fmt: skip
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_authz (ticket_hash, client_id, redirect_uri, challenge, state, "
                "scope, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_sha256(ticket), client_id, redirect, challenge, request.state, request.scope,
                 int(time.time()) + DEVICE_LIFETIME_S),
            )  # fmt: skip
        return ticket, request

    def authorization(self, ticket: str) -> Authorization | None:
        rows = self._db.query(
            "SELECT * FROM idp_authz WHERE ticket_hash = ? AND used = 0 AND code_hash IS NULL "
            "AND expires_at > ?",
            (_sha256(ticket), int(time.time())),
        )
        if not rows:
            return None
        r = rows[0]
        return Authorization(r["client_id"], r["redirect_uri"], r["challenge"], r["state"],
                             r["scope"], r["subject"])  # fmt: skip

    def authorization_failed(self, ticket: str) -> None:
        """A wrong password on this request's page; five end the request."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE idp_authz SET failures = failures + 1, used = CASE WHEN "
                "failures + 1 >= ? THEN 1 ELSE used END WHERE ticket_hash = ?",
                (MAX_SIGN_IN_FAILURES, _sha256(ticket)),
            )

    def authorize_as(self, ticket: str, subject: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE idp_authz SET subject = ? WHERE ticket_hash = ?", (subject, _sha256(ticket))
            )

    def issue_code(self, ticket: str) -> str:
        code = secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE idp_authz SET code_hash = ?, expires_at = ? WHERE ticket_hash = ?",
                (_sha256(code), int(time.time()) + 60, _sha256(ticket)),
            )
        return code

    def redeem(self, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        """Tokens for an authorization code, once, to the client and redirect it was issued
        for, with the verifier whose S256 is the challenge."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idp_authz WHERE code_hash = ?", (_sha256(form.get("code", "")),)
            ).fetchone()
            if row is None or row["used"] or row["expires_at"] <= time.time():
                raise OAuthError("invalid_grant", "the code is unknown, used or expired")
            conn.execute("UPDATE idp_authz SET used = 1 WHERE code_hash = ?", (row["code_hash"],))
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (row["client_id"], row["redirect_uri"]) != (client_id, form.get("redirect_uri")):
            raise OAuthError("invalid_grant", "the code was issued to another client or redirect")
        if not hmac.compare_digest(digest.rstrip(b"=").decode(), row["challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return self._tokens(row["subject"], client_id, row["scope"])

    # -- proofs --------------------------------------------------------------------------

    def person(self, access_token: str) -> str:
        """The subject of a person's access token for this provider, or OAuthError."""
        claims = self._verify_access(access_token)
        if claims is None or claims.get("token_use") != "person":
            raise OAuthError("invalid_grant", "the subject_token is not a valid access token")
        if "runs" not in str(claims.get("scope", "")).split():
            raise OAuthError("invalid_scope", "the sign-in did not grant the scope 'runs'")
        return str(claims["sub"])

    def proof(self, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        """A proof for one message: token exchange with the person's access token."""
        if client_id not in PUBLIC_CLIENTS:
            raise OAuthError("unauthorized_client", f"{client_id[:64]!r} may not ask for proofs")
        if form.get("audience") != PROOF_AUDIENCE:
            raise OAuthError("invalid_target", f"proofs are for the audience {PROOF_AUDIENCE!r}")
        subject = self.person(form.get("subject_token", ""))
        try:
            raw = json.loads(form.get("authorization_details", ""))
            if not isinstance(raw, list) or len(raw) != 1:
                raise ValueError("give exactly one entry")
            details = ProofDetails.model_validate(raw[0])
        except (ValueError, ValidationError) as exc:
            raise OAuthError("invalid_authorization_details", str(exc)[:500]) from None
        if details.action == "start":
            if not details.agent or details.scopes is None:
                raise OAuthError("invalid_authorization_details", "a start names agent and scopes")
            # Within what the agent's client may ask for (an agent with no client here gets
            # no token from this provider, whatever it is granted).
            allowed = self.agent_scopes(details.agent)
            if allowed is not None and not set(details.scopes) <= allowed:
                raise OAuthError(
                    "invalid_authorization_details",
                    f"{details.agent} never asks for {sorted(set(details.scopes) - allowed)}",
                )
            # Starting a run of an agent with these scopes is the person's consent to them.
            self.grant(subject, details.agent, details.scopes)
        now = int(time.time())
        jti = secrets.token_hex(16)
        entry = details.model_dump(exclude_none=True)
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": PROOF_AUDIENCE,
            "iat": now,
            "exp": now + PROOF_LIFETIME_S,
            "jti": jti,
            "client_id": client_id,
            "authorization_details": [entry],
        }
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idp_proofs (jti, subject, run, action, details, issued_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (jti, subject, details.run, details.action, json.dumps(entry), now,
                 now + PROOF_LIFETIME_S),
            )  # fmt: skip
        return {
            "access_token": self._sign(claims),
            "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_type": "N_A",
            "expires_in": PROOF_LIFETIME_S,
        }

    def proofs(self, run: str) -> list[dict[str, Any]]:
        rows = self._db.query("SELECT * FROM idp_proofs WHERE run = ? ORDER BY issued_at", (run,))
        return [dict(r) for r in rows]


# -- pages -------------------------------------------------------------------------------

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CSRF_COOKIE = "idp_csrf"


def page(title: str, body: str) -> str:
    """A whole page; every value in `body` is escaped by the caller."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}"
        "label{display:block;margin:.8em 0}input{font-size:1.1em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def sign_in_form(
    csrf: str, user_code: str = "", error: str = "", request: str | None = None
) -> str:
    """The sign-in page: for a device's code, or (`request`) for an authorization request."""
    warn = f"<p role='alert'>{html.escape(error)}</p>" if error else ""
    if request is None:
        target = "/idp/device"
        asked = (
            "<label>Code shown by your device <input name='user_code' "
            f"value='{html.escape(user_code)}' autocomplete='off' required></label>"
        )
    else:
        target = "/idp/authorize"
        asked = f"<input type='hidden' name='request' value='{html.escape(request)}'>"
    return page(
        "Sign in to the sim's identity provider",
        f"{warn}<form method='post' action='{target}'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>{asked}"
        "<label>Name <input name='username' autocomplete='username' required></label>"
        "<label>Password <input type='password' name='password' "
        "autocomplete='current-password' required></label>"
        "<button type='submit'>Sign in</button></form>",
    )


def consent_form(csrf: str, ticket: str, person: str, client_id: str, scope: str,
                 action: str = "/idp/device/consent") -> str:  # fmt: skip
    asked = "".join(f"<li>{html.escape(SCOPE_WORDS.get(s, s))}</li>" for s in scope.split())
    return page(
        "Allow access?",
        f"<p>Signed in as <strong>{html.escape(person)}</strong>.</p>"
        f"<p><strong>{html.escape(PUBLIC_CLIENTS.get(client_id, client_id))}</strong> asks to:"
        f"</p><ul>{asked}</ul><form method='post' action='{html.escape(action)}'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        f"<input type='hidden' name='ticket' value='{html.escape(ticket)}'>"
        "<button type='submit' name='decision' value='allow'>Allow</button> "
        "<button type='submit' name='decision' value='deny'>Deny</button></form>",
    )
