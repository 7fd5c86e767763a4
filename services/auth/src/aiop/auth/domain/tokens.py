"""auth's side of the token contract (aiop.contracts.tokens): the claims as the plain
mapping the JWT library signs. Signing happens in the key store."""

from datetime import datetime
from typing import Any

import msgspec

from aiop.contracts.tokens import ALGORITHM, AUDIENCE, ISSUER, AccessClaims, access_claims

__all__ = ["ALGORITHM", "AUDIENCE", "ISSUER", "expires_at", "token_claims"]


def token_claims(
    principal: str,
    projects: list[str],
    now: datetime,
    ttl_s: float,
    *,
    agent: str | None = None,
    capabilities: list[str] | None = None,
) -> dict[str, Any]:
    """The claims to sign; an agent's (``agent``, ``capabilities``) only when given."""
    claims = access_claims(principal, projects, now, ttl_s, agent=agent, capabilities=capabilities)
    return {k: v for k, v in msgspec.to_builtins(claims).items() if v is not None}


def expires_at(claims: dict[str, Any]) -> datetime:
    return msgspec.convert(claims, AccessClaims).expires_at
