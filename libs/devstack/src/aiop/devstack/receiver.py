"""An HTTP receiver for tests of what the platform sends out (webhook deliveries): it
listens on a free local port, hands each request to ``answer`` for the status to reply
with, and queues every request it received, so a test awaits them rather than sleeping.

    async with Receiver(lambda request: 200) as receiver:
        ...  # point the platform at receiver.url
        request = await receiver.next(timeout_s=10)
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

from aiop.devstack.ports import free_port


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the receiver answered
    error: str | None = None  # what ``answer`` raised (answered with a 500)


Answer = Callable[["Received"], int]


class Receiver:
    def __init__(self, answer: Answer, host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.host = host
        self.port = free_port(host)
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def __aenter__(self) -> "Receiver":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def next(self, timeout_s: float = 10.0) -> Received:
        """The next request received, waiting at most ``timeout_s`` for it."""
        return await asyncio.wait_for(self.received.get(), timeout_s)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, path, headers, body, 0)
            error = None
            try:
                status = self.answer(request)
            except Exception as exc:  # a check that failed: the sender sees a 500
                status, error = 500, f"{type(exc).__name__}: {exc}"
            phrase = HTTPStatus(status).phrase
            writer.write(
                f"HTTP/1.1 {status} {phrase}\r\ncontent-length: 0\r\n"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            await self.received.put(Received(method, path, headers, body, status, error))
        writer.close()
