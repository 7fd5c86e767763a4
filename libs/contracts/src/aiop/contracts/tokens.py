"""The access token contract: auth signs these claims, the gateway verifies them.

A token is a JWT signed with auth's Ed25519 key (``ALGORITHM``), whose public half auth
publishes as a JWKS. ``exp`` bounds how long a leaked token is useful.
"""

import time
from datetime import UTC, datetime, timedelta

import msgspec

ISSUER = "aiop-auth"
AUDIENCE = "aiop"
ALGORITHM = "EdDSA"
# A token missing any of these is refused, whatever its signature.
REQUIRED_CLAIMS: tuple[str, ...] = ("sub", "projects", "iss", "aud", "iat", "exp")


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims of an access token; the field names are the claim names."""

    sub: str  # the principal
    projects: list[str]
    iss: str = ISSUER
    aud: str = AUDIENCE
    iat: int = msgspec.field(default_factory=lambda: int(time.time()))
    exp: int  # seconds since the epoch, like iat
    # An agent's token only (contracts.agents): the agent it names and the capabilities it
    # may take work for. Left out of every other token, which stays as it always was.
    agent: str | None = None
    capabilities: list[str] | None = None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def access_claims(
    principal: str,
    projects: list[str],
    now: datetime,
    ttl_s: float,
    *,
    agent: str | None = None,
    capabilities: list[str] | None = None,
) -> AccessClaims:
    """The claims of a token for ``principal``, issued at ``now`` and valid ``ttl_s``
    seconds; with ``agent``, an agent's token for ``capabilities``."""
    return AccessClaims(
        sub=principal,
        projects=list(projects),
        iat=int(now.timestamp()),
        exp=int((now + timedelta(seconds=ttl_s)).timestamp()),
        agent=agent,
        capabilities=None if capabilities is None else list(capabilities),
    )
