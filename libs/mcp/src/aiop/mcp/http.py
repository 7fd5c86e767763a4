"""MCP over streamable HTTP: an ASGI app for the gateway to serve (at ``/mcp``).

Stateless: every request stands alone and is authenticated alone, so any replica of the
gateway answers it, with no session to find. A tool's calls go in-process to ``api``,
the app the gateway serves (its guards and rate limits included), with the request's
own bearer token: the API checks it and shows only what it may see.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aiop.client import AsyncClient, RetryPolicy
from aiop.mcp.server import AiopMcp

# The refusal of a request without a token the API takes (a 401, say); None lets it in.
Refuse = Callable[[Request], Awaitable[Response | None]]
# A moment's unavailability is waited out; a caller past its rate limit hears so within
# seconds, as a tool error, rather than having its tool wait as long as the limit says.
RETRY = RetryPolicy(attempts=2, max_wait=2.0)


class StreamableHttp:
    def __init__(self, api: ASGIApp, refuse: Refuse) -> None:
        self.api = api
        self.refuse = refuse
        self.mcp = AiopMcp(self._client_for)
        # No DNS-rebinding check (the SDK's TransportSecuritySettings): a page a browser
        # loads cannot send the bearer token every request needs.
        self.sessions = StreamableHTTPSessionManager(self.mcp.server, stateless=True)
        self._stopping = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the SDK's request handling (a task group of its own) until ``stop``."""
        ready = asyncio.Event()
        self._running = asyncio.create_task(self._run(ready), name="mcp")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._running.done():
            self._running.result()  # raises what kept it from starting

    async def stop(self) -> None:
        """End every request still in progress (a tool still waiting for a run)."""
        self._stopping.set()
        if self._running is not None:
            await self._running

    async def _run(self, ready: asyncio.Event) -> None:
        async with self.sessions.run():
            ready.set()
            await self._stopping.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = await self.refuse(request)
        if refusal is None and request.method != "POST":
            # No session: no stream of its own to open with GET, none to end with DELETE.
            refusal = _not_allowed(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.sessions.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _client_for(self, request: Any) -> AsyncIterator[AsyncClient]:
        """A client calling the API in-process as the caller: its token and its address."""
        assert isinstance(request, Request), "streamable HTTP gives each message its request"
        address = (request.client.host, request.client.port) if request.client else ("", 0)
        # An error of the API's is its answer (a 500), not an exception here.
        transport = httpx.ASGITransport(self.api, raise_app_exceptions=False, client=address)
        token = bearer_token(request.headers.get("authorization", ""))
        async with AsyncClient(
            str(request.base_url), token=token, transport=transport, retry=RETRY
        ) as api:
            yield api


def bearer_token(header: str) -> str | None:
    """The token in ``Bearer <token>`` (the scheme in any case); None for anything else."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _not_allowed(request: Request) -> Response:
    detail = f"{request.method} is not served: MCP here is stateless, every message a POST"
    body = {"type": "about:blank", "title": "Method Not Allowed", "status": 405,
            "detail": detail, "instance": request.url.path}  # fmt: skip
    return Response(json.dumps(body), 405, {"Allow": "POST"}, "application/problem+json")
