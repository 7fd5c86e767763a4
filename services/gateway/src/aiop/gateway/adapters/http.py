"""The HTTP server, started and stopped by the service like any other part of it."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

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


class HttpServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        # Requests that wait by design (an agent's long poll, a followed log, an MCP tool
        # waiting for a run) would hold a stop up for minutes: they get this long.
        config = uvicorn.Config(app, host, port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=STOP_GRACE_S)  # fmt: skip
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
            self._server.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
