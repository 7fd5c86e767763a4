"""Pytest fixtures giving each test real, isolated servers on free ports.

Chain: ``tmp_path -> nats_server -> nats_url``; ``postgres_server (session) -> pg_url``
(a fresh database per test). Nothing running on the host is used.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from aiop.devstack.nats import NatsServer
from aiop.devstack.postgres import PostgresServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream nats-server of this test's own, with its store under ``tmp_path``."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The URL of this test's own nats-server."""
    return nats_server.url


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL for the session; tests isolate by database (see ``pg_url``)."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The URL of a new, empty database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.url)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
