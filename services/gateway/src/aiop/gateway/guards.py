"""Checks every request passes before any route sees it: the size of its headers, and
the rate limits of its client address for what is not yet a principal's (a request
without a token, a token request; a token that fails is counted where it fails)."""

from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from aiop.gateway.adapters.ratelimits import Exceeded, RateLimits
from aiop.gateway.problems import MEDIA_TYPE, problem_body

# Far above what any client of the API sends (a JWT is about 400 bytes), far below what
# would let a client make the gateway hold megabytes per connection.
MAX_HEADER_BYTES = 32 * 1024
TOKENS_PATH = "/v1/tokens"
UNLIMITED_PATHS = frozenset({"/healthz"})  # probes, which show nothing


class Guards:
    """431 for headers over MAX_HEADER_BYTES (the HTTP parser has no limit of its own, and
    each header is kept for the whole request); 429 past the client address's limits.

    A request with a token is left to its principal's limit, checked once the token is
    verified: counting it against its address too would cost every request a second
    check, and would make clients behind one address share a limit."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > MAX_HEADER_BYTES:
            detail = f"the request's headers hold {size} bytes, more than {MAX_HEADER_BYTES}"
            await refuse(send, scope, 431, detail, "headers")
            return
        exceeded = self._address_limit(scope)
        if exceeded is not None:
            await refuse(send, scope, 429, too_many(exceeded), "rate-limited", exceeded.headers())
            return
        await self.app(scope, receive, send)

    def _address_limit(self, scope: Scope) -> Exceeded | None:
        path = scope["path"]
        if path in UNLIMITED_PATHS:
            return None
        address = client_address(scope)
        if path == TOKENS_PATH:
            return self.limits.hit("tokens", address) or self.limits.hit("address", address)
        if any(name == b"authorization" for name, _ in scope["headers"]):
            return None  # the principal's limit, or the address's if the token fails
        return self.limits.hit("address", address)


def client_address(scope: Scope) -> str:
    return str((scope.get("client") or ("unknown", 0))[0])


def too_many(exceeded: Exceeded) -> str:
    return (
        f"more than {exceeded.limit} requests in {exceeded.window_s} s for this"
        f" {exceeded.policy}; retry in {exceeded.retry_after_s} s"
    )


async def refuse(
    send: Send, scope: Scope, status: int, detail: str, kind: str,
    headers: dict[str, str] | None = None,
) -> None:  # fmt: skip
    body = msgspec.json.encode(problem_body(status, detail, scope["path"], kind))
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
    ]  # fmt: skip
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": body})
