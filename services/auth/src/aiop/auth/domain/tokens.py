"""The claims of an access token; signing happens in the key store."""

from datetime import UTC, datetime, timedelta
from typing import Any

ISSUER = "aiop-auth"
AUDIENCE = "aiop"
ALGORITHM = "EdDSA"


def token_claims(
    principal: str, projects: list[str], now: datetime, ttl_s: float
) -> dict[str, Any]:
    """Claims for ``principal``; ``exp`` bounds how long a leaked token is useful."""
    return {
        "sub": principal,
        "projects": list(projects),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }


def expires_at(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(claims["exp"], UTC)
