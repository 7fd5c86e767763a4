"""An httpx transport that calls an ASGI app in-process and streams its answer.

httpx's own ASGITransport collects the whole body before it answers, so a followed
event stream, which ends only when the run does (or never, for the event tail), would
never reach the console. Here the app runs in a task of its own; the answer is returned
as soon as its status and headers are sent, and the body is read as the app sends it.
Closing the answer tells the app the client went away, as a browser closing does.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

_END = object()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme, "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query, "server": (request.url.host, request.url.port),
            "client": self.client, "root_path": "",
        }  # fmt: skip
        exchange = _Exchange(request.stream)
        task = asyncio.create_task(exchange.run(self.app, scope))
        try:
            start = await exchange.started
        except BaseException:
            exchange.gone.set()
            task.cancel()
            raise
        return httpx.Response(
            start["status"], headers=start.get("headers", []),
            stream=_Body(exchange, task), request=request,
        )  # fmt: skip


class _Exchange:
    """One request's two sides: what the app receives, and what it sends."""

    def __init__(self, body: httpx.AsyncByteStream) -> None:
        self.body = body.__aiter__()
        self.sent_all = False
        self.gone = asyncio.Event()  # the client closed the answer
        self.started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[Any] = asyncio.Queue()

    async def receive(self) -> Message:
        if not self.sent_all:
            try:
                return {"type": "http.request", "body": await self.body.__anext__(),
                        "more_body": True}  # fmt: skip
            except StopAsyncIteration:
                self.sent_all = True
                return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()  # an app streaming its answer listens for the client going
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started.set_result(message)
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.chunks.put_nowait(message["body"])
            if not message.get("more_body", False):
                self.chunks.put_nowait(_END)

    async def run(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self.receive, self.send)
        except Exception as exc:
            if not self.started.done():
                self.started.set_exception(exc)
            self.chunks.put_nowait(exc)
        finally:
            self.chunks.put_nowait(_END)
            if not self.started.done():
                self.started.set_exception(RuntimeError("the app answered nothing"))


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange, task: "asyncio.Task[None]") -> None:
        self.exchange = exchange
        self.task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.exchange.chunks.get()) is not _END:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    async def aclose(self) -> None:
        self.exchange.gone.set()
        if not self.task.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), timeout=1.0)
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
