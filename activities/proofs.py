"""Checking a person's proof: the signature, against the identity provider's keys.

Every message a person sends into a run (a decision, a message, an operator's action) carries a
proof: a short-lived JWT the provider signed for the workers' audience, whose
`authorization_details` name the run and exactly what the message decides (see
`workflows/proofs.py`, which checks that binding deterministically). The signature, the issuer,
the audience and the expiry need the provider's keys and the clock, so they are checked here,
in the `verify_proof` local activity: its answer is recorded in the run's history, so a replay
never depends on keys the provider has since dropped.

The keys come from the provider's JWKS (its discovery document names it), cached by the worker
and fetched again when a proof names a key the cache lacks (a rotation needs no restart), at
most once every few seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agents._vocab.names import PROOF_REFUSED, VERIFY_PROOF
from durable_agents._vocab.schemas import ProofCheck, Proven

if TYPE_CHECKING:
    from durable_agents.settings import Settings

# Algorithms a proof may be signed with (never `none`, never HMAC with a public key).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
# A key the cache lacks is looked for again at most this often.
REFETCH_AFTER_S = 5.0
# Clock skew allowed between the provider and the worker.
LEEWAY_S = 30


def refused(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=PROOF_REFUSED, non_retryable=True)


@dataclass
class ProofTrust:
    """Whose proofs a worker takes: an OpenID provider found by discovery (`discovery_url`,
    its `/.well-known/openid-configuration` base) or, for tests, a fixed issuer and JWKS."""

    audience: str = "durable-agents"
    discovery_url: str | None = None
    issuer: str | None = None
    jwks: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.discovery_url is None) == (self.jwks is None):
            raise ValueError("ProofTrust: give discovery_url, or issuer and jwks")
        if self.jwks is not None and not self.issuer:
            raise ValueError("ProofTrust: a fixed jwks needs its issuer")


def configured_trust(settings: Settings | None = None) -> ProofTrust | None:
    """Whose proofs of people to take: the OpenID provider the settings name (None: none, and
    every person's message is refused, saying to set DURABLE_AGENTS_OIDC_URL)."""
    from durable_agents.settings import current

    settings = settings or current()
    if settings.identity_provider is None:
        return None
    return ProofTrust(audience=settings.proof_audience, discovery_url=settings.identity_provider)


@dataclass
class _Keys:
    issuer: str = ""
    jwks_uri: str = ""
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched: float = -1e9


class ProofVerifier:
    """One per worker: the provider's keys, cached, and the `verify_proof` activity."""

    def __init__(self, trust: ProofTrust | None) -> None:
        # None: this worker trusts no provider (DURABLE_AGENTS_OIDC_URL unset) and takes no proof.
        self._configured = trust is not None
        self.trust = trust or ProofTrust(audience="", issuer="-", jwks={"keys": []})
        self._keys = _Keys()
        self._lock = asyncio.Lock()
        jwks = self.trust.jwks
        if jwks is not None:
            self._keys = _Keys(issuer=self.trust.issuer or "", keys=_by_kid(jwks))

    async def _refresh(self) -> None:
        import httpx

        base = (self.trust.discovery_url or "").rstrip("/")
        async with httpx.AsyncClient(timeout=5.0) as http:
            if not self._keys.jwks_uri:
                found = (await http.get(f"{base}/.well-known/openid-configuration")).json()
                self._keys.issuer, self._keys.jwks_uri = found["issuer"], found["jwks_uri"]
            answer = await http.get(self._keys.jwks_uri)
            answer.raise_for_status()
            # What the provider publishes now, no more: a key it withdrew (compromised) is
            # trusted no longer. Replays need none: a run's verdicts are in its history.
            self._keys.keys = _by_kid(answer.json())
        self._keys.fetched = time.monotonic()

    async def key(self, kid: str) -> dict[str, Any] | None:
        found = self._keys.keys.get(kid)
        if found is not None or self.trust.discovery_url is None:
            return found
        async with self._lock:
            if kid not in self._keys.keys and (
                time.monotonic() - self._keys.fetched > REFETCH_AFTER_S or not self._keys.issuer
            ):
                try:
                    await self._refresh()
                except Exception as exc:  # noqa: BLE001 - any failure to read the keys is one thing
                    raise ApplicationError(
                        f"the identity provider's keys could not be read from "
                        f"{self.trust.discovery_url}: {exc!r}",
                        type="ProviderUnavailable",
                    ) from None
        return self._keys.keys.get(kid)

    async def verify(self, token: str, as_evidence: bool = False) -> Proven:
        """The proof's claims if its signature, issuer, audience and expiry hold; else a
        non-retryable ProofRefused saying what is wrong. `as_evidence`: checked as of when it
        was issued (an audit, long after it expired)."""
        from joserfc import jws, jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet
        from joserfc.jwt import JWTClaimsRegistry

        if not self._configured:
            raise refused(
                "this worker trusts no identity provider, so it takes no person's proof: its "
                "operators set DURABLE_AGENTS_OIDC_URL to the provider people sign in at"
            )
        try:
            header = jws.extract_compact(token.strip().encode()).headers()
        except (JoseError, ValueError) as exc:
            raise refused(f"the proof is not a signed token (a JWS): {exc}") from None
        kid = str(header.get("kid", ""))
        key = await self.key(kid)
        if key is None:
            raise refused(
                f"the proof is signed with key {kid[:40]!r}, which the identity provider "
                f"does not publish: it was not issued by {self._keys.issuer or 'the provider'}"
            )
        try:
            decoded = jwt.decode(
                token.strip(), KeySet.import_key_set({"keys": [key]}), algorithms=ALGORITHMS
            )
            issued = decoded.claims.get("iat")
            at = int(issued) if as_evidence and isinstance(issued, int | float) else None
            JWTClaimsRegistry(
                now=at,
                leeway=LEEWAY_S,
                iss={"essential": True, "value": self._keys.issuer},
                aud={"essential": True, "value": self.trust.audience},
                exp={"essential": True},
                sub={"essential": True},
                jti={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise refused(f"the proof is not valid: {exc}") from None
        claims = decoded.claims
        details = claims.get("authorization_details")
        if not (isinstance(details, list) and len(details) == 1 and isinstance(details[0], dict)):
            raise refused("the proof names no message (authorization_details)")
        return Proven(
            subject=str(claims["sub"]),
            issuer=str(claims["iss"]),
            proof_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            details=details[0],
            kid=kid,
        )

    @activity.defn(name=VERIFY_PROOF)
    async def verify_proof(self, check: ProofCheck) -> Proven:
        """Check a person's proof against the identity provider's keys."""
        return await self.verify(check.token, as_evidence=check.as_evidence)


def _by_kid(jwks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return {str(k.get("kid", "")): k for k in keys or [] if isinstance(k, dict)}
