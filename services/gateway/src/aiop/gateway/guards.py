"""Checks every request passes before any route sees it."""

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from aiop.gateway.problems import MEDIA_TYPE, problem_body

# Far above what any client of the API sends (a JWT is about 400 bytes), far below what
# would let a client make the gateway hold megabytes per connection.
MAX_HEADER_BYTES = 32 * 1024


class HeaderLimit:
    """431 for a request whose headers together exceed MAX_HEADER_BYTES. The HTTP parser
    has no limit of its own, and each header is kept for the whole request."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.limit:
                detail = f"the request's headers hold {size} bytes, more than {self.limit}"
                body = msgspec.json.encode(problem_body(431, detail, scope["path"], "headers"))
                await send({
                    "type": "http.response.start", "status": 431,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())],
                })  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
