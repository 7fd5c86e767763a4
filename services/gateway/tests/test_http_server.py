"""The gateway's HTTP server stops at once with streams open, and reads bodies whole."""

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aiop.devstack.ports import free_port
from aiop.gateway.adapters.http import HttpServer


def streaming_app(ended: asyncio.Event) -> Starlette:
    async def forever() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.05)  # the stream's own pace, not a wait for an event
        finally:
            ended.set()

    async def stream(_: Request) -> StreamingResponse:
        return StreamingResponse(forever(), media_type="text/event-stream")

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    async def polls(request: Request) -> Response:
        """Asks 20 times whether its client left, and says how many tasks that left."""
        await request.body()
        before = len(asyncio.all_tasks())
        for _ in range(20):
            assert not await request.is_disconnected()
        for _ in range(3):  # a cancelled task ends on the loop's next turns
            await asyncio.sleep(0)
        return Response(str(len(asyncio.all_tasks()) - before))

    return Starlette(routes=[
        Route("/stream", stream), Route("/echo", echo, methods=["POST"]), Route("/polls", polls),
    ])  # fmt: skip


async def test_a_stop_ends_open_streams_without_waiting_out_its_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended = asyncio.Event()
    port = free_port()
    # A grace far longer than the wait below: only ending the stream lets the stop return.
    server = HttpServer(streaming_app(ended), "127.0.0.1", port, grace_s=600)
    await server.start()
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.aiter_bytes()
        assert b"tick" in await anext(chunks)
        await asyncio.wait_for(server.stop(), timeout=30)
        assert ended.is_set()
        async for _ in chunks:  # what was in flight, then a proper end (no incomplete read)
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_sent_in_parts_is_read_whole() -> None:
    port = free_port()
    server = HttpServer(streaming_app(asyncio.Event()), "127.0.0.1", port)
    await server.start()
    try:

        async def parts() -> AsyncIterator[bytes]:
            for part in (b"one ", b"two ", b"three"):
                yield part

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.post("/echo", content=parts())
        assert response.content == b"one two three"
    finally:
        await server.stop()


async def test_asking_whether_the_client_left_leaves_no_task_behind() -> None:
    port = free_port()
    server = HttpServer(streaming_app(asyncio.Event()), "127.0.0.1", port)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/polls")
        assert response.status_code == 200
        assert int(response.text) <= 0
    finally:
        await server.stop()
