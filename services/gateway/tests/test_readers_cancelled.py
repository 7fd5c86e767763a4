"""The stream readers behind SSE answers let go of their subscriptions when the answer is
ended by a cancel delivered again at every await, as Starlette ends a stream whose
client left. A subscription left behind keeps taking messages nobody reads, and holds
the connection's drain at stop until its timeout."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from aiop.contracts.subjects import STREAM_EVENTS
from aiop.gateway.adapters.event_tail import EventTail
from aiop.gateway.adapters.logs import LogReader
from aiop.gateway.adapters.workflow_events import WorkflowEventReader
from aiop.servicekit.streams import ensure_streams

pytestmark = pytest.mark.integration

Opens = Callable[[JetStreamContext], AbstractAsyncContextManager[Any]]
READERS: dict[str, Opens] = {
    "event tail": lambda js: EventTail.open(js, {STREAM_EVENTS: ["aiop.>"]}, None, {}),
    "step log": lambda js: LogReader.open(js, "wf-1", None),
    "workflow events": lambda js: WorkflowEventReader.open(js, "wf-1"),
}


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


def subscriptions(nc: Client) -> int:
    return len(nc._subs)  # nats-py has no public count of a connection's subscriptions


@pytest.mark.parametrize("reader", list(READERS))
async def test_a_reader_cancelled_again_and_again_unsubscribes(nc: Client, reader: str) -> None:
    before = subscriptions(nc)
    opened = asyncio.Event()

    async def hold() -> None:
        async with READERS[reader](nc.jetstream()):
            opened.set()
            await asyncio.Event().wait()  # until cancelled

    async with anyio.create_task_group() as group:
        group.start_soon(hold)
        await asyncio.wait_for(opened.wait(), timeout=10)
        assert subscriptions(nc) > before
        group.cancel_scope.cancel()
    assert subscriptions(nc) == before
