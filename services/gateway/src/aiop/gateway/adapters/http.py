"""The HTTP server, started and stopped by the service like any other part of it."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("aiop.gateway")
STOP_GRACE_S = 5  # seconds (uvicorn takes whole ones)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the service stops it) and with a
    "listening" signal, which uvicorn has not."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


class EndStreamsAtStop:
    """Streams (SSE, a followed log, a long poll) would hold a stop up until its grace ran
    out: once stopping begins, a request whose body has been read hears that its client
    left, so its handler ends at once; a response it leaves open is then ended properly,
    and the client sees a complete stream (an EventSource reconnects later)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.stopping = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = False
        started = finished = False

        async def send_noting_the_end(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def receive_until_stop() -> Message:
            nonlocal body_read
            if not body_read:  # a body being read is read whole
                message = await receive()
                body_read = message["type"] != "http.request" or not message.get("more_body")
                return message
            if self.stopping.is_set():
                return {"type": "http.disconnect"}
            received = asyncio.ensure_future(receive())
            stopping = asyncio.ensure_future(self.stopping.wait())
            try:  # a caller polling for a disconnect cancels this at once: leave nothing
                await asyncio.wait({received, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                answered = received.done()
                if not answered:
                    received.cancel()
            return received.result() if answered else {"type": "http.disconnect"}

        await self.app(scope, receive_until_stop, send_noting_the_end)
        if started and not finished and self.stopping.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class HttpServer:
    def __init__(self, app: ASGIApp, host: str, port: int, grace_s: int = STOP_GRACE_S) -> None:
        # Requests still running at a stop (an MCP tool waiting for a run, a slow query)
        # get this long; streams end at once (EndStreamsAtStop).
        self._app = EndStreamsAtStop(app)
        config = uvicorn.Config(self._app, host, port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=grace_s)  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    async def start(self) -> None:
        """Return once connections are accepted; raise if the server could not listen."""
        self._task = asyncio.create_task(self._server.serve(), name="http")
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if not self._server.listening.is_set():
            await asyncio.gather(self._task, return_exceptions=True)
            raise RuntimeError(f"the gateway could not listen on {self.host}:{self.port}")
        log.info("listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish."""
        if self._task is not None:
            self._app.stopping.set()
            self._server.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
