"""Tokens for side effects: every agent is a client of an identity provider, and before a
tool that names an `audience` runs, its activity exchanges the agent's credentials for a
short-lived token (OAuth 2.0 Token Exchange, RFC 8693).

The request (client_secret_basic as the agent's client):

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    requested_subject=<principal>        the person the run acts for (Keycloak's name for it);
                                         the provider issues only within their grant
    audience=<system>                    the tool's `audience`
    scope=<the tool's required scopes>   a run's grant, narrowed to what this call needs
    requested_token_type=urn:ietf:params:oauth:token-type:access_token
    durable_agents_run=<workflow id>     extensions a provider may ignore (RFC 6749 3.2):
    durable_agents_token_id=<idempotency key>   the actor's run and the token id it asks for
    durable_agents_granted_to=<agent>    a sub-agent: the root agent whose grant it acts under

Credentials are read from the worker's credentials file only, never from workflow input or
history; the file is read again when it changes (a rotated secret needs no restart). Tokens
stay in this worker's memory, per run, scope, audience and call (a token is good for one call:
systems bind its id to one idempotency key), until shortly before they expire; a retried
attempt reuses its call's token. A refusal maps onto the taxonomy: a provider that cannot be
reached is transient; credentials it refuses are AuthenticationFailed (the run parks for an
operator); a scope or audience it will not grant is PermissionDenied; a person's grant that is
missing or revoked (`consent_required`) is AuthenticationFailed too: the run parks, and
resumes once the person grants it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from temporalio.exceptions import ApplicationError

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import ToolRequest
from durable_agents.settings import current

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# A cached token is used until this long before it expires.
EXPIRY_MARGIN_S = 30.0
# Tokens kept at most (the oldest go first); one per call in flight is what is needed.
CACHE_LIMIT = 10_000
# What the provider's refusals mean for the run.
_DENIED = frozenset({"invalid_scope", "invalid_target", "access_denied", "unauthorized_client"})
_BUSY = frozenset({"temporarily_unavailable", "server_error", "slow_down"})


class AgentClient(BaseModel):
    """One agent's client at the identity provider (a table of the credentials file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> AgentClient:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("give exactly one of client_secret and client_secret_file")
        return self

    def secret(self) -> str:
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        assert self.client_secret_file is not None
        return self.client_secret_file.read_text().strip()


def _refused(message: str, kind: str = f.AUTHENTICATION_FAILED) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass
class _Loaded:
    stamp: tuple[int, int]
    clients: dict[str, AgentClient]


class Credentials:
    """The credentials file: `[agent]` tables (any version) and `["agent@version"]` tables
    (that version only, preferred), each with client_id and client_secret or
    client_secret_file."""

    def __init__(self) -> None:
        self._loaded: dict[Path, _Loaded] = {}

    def client(self, path: Path, agent: str, version: str) -> AgentClient:
        clients = self._load(path)
        found = clients.get(f"{agent}@{version}") or clients.get(agent)
        if found is None:
            raise _refused(
                f"agent {agent} (version {version}) has no credentials in {path}: add a "
                f'["{agent}"] table with client_id and client_secret_file, the client the '
                "identity provider knows the agent as (DURABLE_AGENTS_CREDENTIALS_FILE)"
            )
        return found

    def _load(self, path: Path) -> dict[str, AgentClient]:
        try:
            stat = path.stat()
        except OSError:
            raise _refused(
                f"no credentials file at {path}: the agents' clients at the identity provider "
                "are read from it (set DURABLE_AGENTS_CREDENTIALS_FILE)"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._loaded.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached.clients
        try:
            raw: dict[str, Any] = tomllib.loads(path.read_text())
            clients = {name: AgentClient.model_validate(entry) for name, entry in raw.items()}
        except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
            # The message names the file and the problem, never a secret's value.
            problem = exc.errors(include_input=False) if isinstance(exc, ValidationError) else exc
            raise _refused(f"the credentials file {path} cannot be used: {problem}") from None
        self._loaded[path] = _Loaded(stamp, clients)
        return clients


_CacheKey = tuple[str, str, str, str]  # run, scopes, audience, idempotency key


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float  # time.monotonic()


class TokenBroker:
    """One per worker: obtains and caches the tokens its tool calls present."""

    def __init__(self) -> None:
        self._credentials = Credentials()
        self._cache: dict[_CacheKey, _Token] = {}
        self._clients: dict[tuple[int, str, bytes], AsyncOAuth2Client] = {}
        self.obtained = 0  # tokens fetched from the provider (tests and metrics)

    @staticmethod
    def _key(request: ToolRequest, audience: str, scopes: tuple[str, ...]) -> _CacheKey:
        return (
            request.identity.workflow_id,
            " ".join(sorted(scopes)),
            audience,
            request.idempotency_key,
        )

    def forget(self, request: ToolRequest, audience: str, scopes: tuple[str, ...]) -> None:
        """Drop the call's token (a system refused it: the next attempt asks anew)."""
        self._cache.pop(self._key(request, audience, scopes), None)

    async def token(self, request: ToolRequest, audience: str, scopes: tuple[str, ...]) -> str:
        key = self._key(request, audience, scopes)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached.expires - EXPIRY_MARGIN_S > now:
            return cached.value
        value, lifetime = await self._exchange(request, audience, scopes)
        self.obtained += 1
        self._remember(key, _Token(value, now + lifetime))
        return value

    def _remember(self, key: _CacheKey, token: _Token) -> None:
        now = time.monotonic()
        if len(self._cache) >= CACHE_LIMIT:
            for old in [k for k, t in self._cache.items() if t.expires <= now]:
                del self._cache[old]
            while len(self._cache) >= CACHE_LIMIT:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = token

    def _client(self, client_id: str, secret: str) -> AsyncOAuth2Client:
        """One pooled OAuth client per event loop and credentials (making one costs ~90 ms:
        its TLS context); a rotated secret gets a new one."""
        key = (id(asyncio.get_running_loop()), client_id, hashlib.sha256(secret.encode()).digest())
        oauth = self._clients.get(key)
        if oauth is None:
            # Imported on the first token asked for: authlib and its JOSE stack weigh on every
            # worker's start, and a worker whose tools call no system never needs them.
            from authlib.integrations.httpx_client import AsyncOAuth2Client

            oauth = AsyncOAuth2Client(
                client_id, secret, token_endpoint_auth_method="client_secret_basic", timeout=10.0
            )
            self._clients[key] = oauth
        return oauth

    async def _exchange(
        self, request: ToolRequest, audience: str, scopes: tuple[str, ...]
    ) -> tuple[str, float]:
        import httpx
        import httpx2
        from authlib.integrations.base_client.errors import OAuthError

        settings = current()
        who = request.identity
        client = self._credentials.client(
            settings.credentials_path.resolve(), who.agent, who.agent_version
        )
        url = settings.idp_token_url
        if not url:
            raise ApplicationError(
                f"agent {who.agent!r} needs a token for its tool, and this worker knows no "
                "identity provider's token endpoint: its operators set "
                "DURABLE_AGENTS_IDP_TOKEN_URL, then `agentctl resume` the run",
                type=f.AUTHENTICATION_FAILED,
                non_retryable=True,
            )
        # A sub-agent acts under its root run's grant: the provider checks that one.
        extra = {"durable_agents_granted_to": who.granted_to} if who.granted_to else {}
        try:
            oauth = self._client(client.client_id, client.secret())
            answer = await oauth.fetch_token(
                url,
                grant_type=TOKEN_EXCHANGE,
                requested_subject=who.principal,
                audience=audience,
                scope=" ".join(sorted(scopes)),
                requested_token_type=ACCESS_TOKEN_TYPE,
                durable_agents_run=who.workflow_id,
                durable_agents_token_id=request.idempotency_key,
                **extra,
            )
        except OSError as exc:
            raise _refused(f"the secret file of {client.client_id} cannot be read: {exc}") from None
        except (httpx2.HTTPError, httpx.HTTPError) as exc:  # authlib's client: httpx2, or httpx
            raise ApplicationError(
                f"the identity provider at {url} did not answer: {exc!r}", type=f.TOOL_TRANSIENT
            ) from None
        except OAuthError as exc:
            text = (
                f"the identity provider refused a token for {who.agent} ({client.client_id}) "
                f"acting for {who.principal} on {audience} with scope {' '.join(scopes)}: "
                f"{exc.error}: {exc.description or ''}".rstrip(": ")
            )
            if exc.error in _BUSY:
                raise ApplicationError(text, type=f.TOOL_TRANSIENT) from None
            if exc.error == "consent_required":
                text += f"; then `agentctl resume {who.workflow_id}`"
            kind = f.PERMISSION_DENIED if exc.error in _DENIED else f.AUTHENTICATION_FAILED
            raise _refused(text, kind) from None
        except ValueError as exc:  # an answer that is no JSON (a proxy's error page, a 5xx)
            raise ApplicationError(
                f"the identity provider at {url} answered with no token: {exc}",
                type=f.TOOL_TRANSIENT,
            ) from None
        value = answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise _refused(f"the identity provider at {url} answered with no access_token")
        lifetime = answer.get("expires_in")
        return value, float(lifetime) if isinstance(lifetime, int | float) else 60.0
