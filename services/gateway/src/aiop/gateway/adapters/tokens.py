"""Access tokens checked locally with auth's public keys (JWKS over request/reply).

The JWKS is fetched once and refetched only when a token names a key id it does not hold
(auth rotated its key), at most once per ``REFRESH_INTERVAL_S``: a flood of tokens with
made-up key ids must not become a flood of requests to auth.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import msgspec

from aiop.contracts.tokens import ALGORITHM, AUDIENCE, ISSUER, REQUIRED_CLAIMS, AccessClaims
from aiop.servicekit.rpc import QueryFailed

Claims = AccessClaims  # what a verified token says about its caller
REFRESH_INTERVAL_S = 5.0
VERIFIED_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """Missing, malformed, forged, expired or meant for someone else."""


class AuthUnavailable(Exception):
    """auth did not answer the JWKS request, so no token can be checked."""


class TokenVerifier:
    def __init__(self, fetch_jwks: Callable[[], Awaitable[bytes]]) -> None:
        self.fetch_jwks = fetch_jwks
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        # Signature checks cost far more than a dict lookup, and a client reuses its token
        # for many requests: remember tokens already verified, until they expire.
        self._verified: dict[str, Claims] = {}

    def cached(self, token: str) -> Claims | None:
        """The claims of ``token`` if it was verified before and has not expired."""
        claims = self._verified.get(token)
        if claims is not None and claims.exp > time.time():
            return claims
        return None

    async def verify(self, token: str) -> Claims:
        claims = self.cached(token)
        if claims is not None:
            return claims
        self._verified.pop(token, None)  # expired, if there at all
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        key = await self._key(kid)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            claims = msgspec.convert(payload, Claims)
        except (jwt.InvalidTokenError, msgspec.ValidationError) as exc:
            raise InvalidToken(str(exc)) from exc
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    async def _key(self, kid: str | None) -> Any:
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        key = self._keys.get(kid)
        if key is None:
            async with self._lock:
                key = self._keys.get(kid)
                if key is None and time.monotonic() - self._fetched_at >= REFRESH_INTERVAL_S:
                    await self._fetch()
                    key = self._keys.get(kid)
        if key is None:
            raise InvalidToken(f"unknown key id {kid!r}")
        return key

    async def _fetch(self) -> None:
        try:
            body = await self.fetch_jwks()
        except QueryFailed as exc:
            raise AuthUnavailable(exc.description) from exc
        jwks = jwt.PyJWKSet.from_dict(msgspec.json.decode(body))
        self._keys = {k.key_id: k.key for k in jwks.keys if k.key_id}
        self._fetched_at = time.monotonic()
