"""A service of the test's own on its nats-server, started and stopped around the test."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import nats
import pytest
from nats.aio.client import Client

from aiop.servicekit import Service, ServiceSettings
from aiop.servicekit.rpc import wait_ready

Running = Callable[[Service], AbstractAsyncContextManager[Service]]


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A plain client of the test's nats-server, for publishing and inspecting."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def settings(nats_url: str) -> ServiceSettings:
    """Settings for a service on the test's nats-server, with a short stop grace."""
    return ServiceSettings(nats_url=nats_url, stop_grace_s=5.0)


@pytest.fixture
def running(nc: Client) -> Running:
    """``async with running(svc):`` the service answers pings inside, is stopped after."""

    @asynccontextmanager
    async def run(svc: Service) -> AsyncIterator[Service]:
        await svc.start()
        try:
            await wait_ready(nc, svc.name, timeout=10)
            yield svc
        finally:
            await svc.stop()

    return run
