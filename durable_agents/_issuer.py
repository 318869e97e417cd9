"""An identity provider in a box, for tests: it signs people's proofs in-process.

`durable_agents.testing` runs agents with no provider at hand; its worker takes the proofs of a
`LocalIssuer` (`trust()`), and the environment signs each decision it makes for a test with it,
as the real provider would for a signed-in person.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from durable_agents._vocab.names import PROOF_AUDIENCE

if TYPE_CHECKING:
    from durable_agents.activities.proofs import ProofTrust

ISSUER = "urn:durable-agents:testing"


class LocalIssuer:
    """A signing key and the proofs it signs."""

    def __init__(self, issuer: str = ISSUER, audience: str = PROOF_AUDIENCE) -> None:
        from joserfc.jwk import RSAKey

        self.issuer, self.audience = issuer, audience
        kid = secrets.token_hex(8)
        self._key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    def trust(self) -> ProofTrust:
        """What a worker needs to take this issuer's proofs."""
        from durable_agents.activities.proofs import ProofTrust

        return ProofTrust(audience=self.audience, issuer=self.issuer, jwks=self.jwks)

    def proof(self, subject: str, details: dict[str, Any], lifetime_s: int = 300) -> str:
        """A proof that `subject` sends the message `details` describe."""
        from joserfc import jwt

        issued = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + lifetime_s,
            "jti": secrets.token_hex(16),
            "authorization_details": [details],
        }
        header = {"alg": "RS256", "kid": self._key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key)
