"""The console's in-process transport streams: a followed answer's first part arrives
before the app has finished, and closing the answer tells the app its client went."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from aiop.gateway.console.transport import StreamingASGITransport


async def test_a_stream_is_read_as_it_is_sent_and_closing_it_disconnects() -> None:
    more = asyncio.Event()
    stopped = asyncio.Event()

    async def follow(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            try:
                yield b"first\n"
                await more.wait()
                yield b"second\n"
                await asyncio.Event().wait()  # never ends on its own
            finally:
                stopped.set()

        return StreamingResponse(parts(), media_type="text/event-stream")

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"got": (await request.body()).decode(), "from": request.client.host})  # type: ignore[union-attr]

    app = Starlette(routes=[Route("/follow", follow), Route("/echo", echo, methods=["POST"])])
    transport = StreamingASGITransport(app, client=("10.0.0.7", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answer = await client.post("/echo", content=b"hello")
        assert answer.json() == {"got": "hello", "from": "10.0.0.7"}
        async with client.stream("GET", "/follow") as stream:
            lines = stream.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == "first"
            more.set()
            assert await asyncio.wait_for(anext(lines), 5) == "second"
        await asyncio.wait_for(stopped.wait(), 5)


async def test_an_app_that_fails_before_answering_raises_to_the_caller() -> None:
    async def broken(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("boom")

    transport = StreamingASGITransport(broken)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.get("/")
