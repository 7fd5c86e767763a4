"""The gateway with auth running in-process on the test's nats-server, reached through
httpx; and a workflow body that is fine."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from starlette.types import ASGIApp

from aiop.auth.main import AuthSettings
from aiop.auth.main import build as build_auth
from aiop.contracts.secrets import generate_key_pair
from aiop.gateway.main import GatewaySettings, bus_and_app
from aiop.servicekit.rpc import wait_ready


@dataclass
class Env:
    client: httpx.AsyncClient
    nc: Client
    token: str
    auth_dir: Path
    secrets_key_file: Path  # the executors' private key: the gateway gets the public one only
    app: ASGIApp | None = None  # what `client` reaches, for a client of another kind (MCP's)

    async def published(self) -> int:
        """How many messages stream AIOP holds."""
        return (await self.nc.jetstream().stream_info("AIOP")).state.messages

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
async def env(nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """Auth and the gateway's bus side running, a client of its app, a dev token."""
    async with running(nats_url, tmp_path) as ready:
        yield ready


@contextlib.asynccontextmanager
async def running(nats_url: str, tmp_path: Path, **gateway: Any) -> AsyncIterator[Env]:
    """``env`` with the gateway's settings changed by ``gateway``."""
    private_pem, public_pem = generate_key_pair()
    (tmp_path / "secrets-key.pem").write_bytes(private_pem)
    (tmp_path / "secrets-public.pem").write_bytes(public_pem)
    auth_settings = AuthSettings(
        nats_url=nats_url, auth_dir=tmp_path / "auth", dev_key_file=tmp_path / "dev.key"
    )
    auth = build_auth(auth_settings)
    auth_task = asyncio.create_task(auth.run())
    nc = await nats.connect(nats_url)
    await wait_ready(nc, "auth", timeout=10)

    settings = GatewaySettings(**{
        "nats_url": nats_url, "max_body_bytes": 64 * 1024,
        "secrets_public_key_file": tmp_path / "secrets-public.pem", **gateway,
    })  # fmt: skip
    gateway, app = bus_and_app(settings)  # its bus side runs; HTTP goes through httpx below
    await gateway.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        dev_key = (tmp_path / "dev.key").read_text().strip()
        reply = await client.post("/v1/tokens", json={"api_key": dev_key})
        assert reply.status_code == 200, reply.text
        yield Env(
            client, nc, reply.json()["token"], tmp_path / "auth", tmp_path / "secrets-key.pem",
            app,
        )  # fmt: skip
    await gateway.stop()
    await nc.close()
    auth.exit()
    await auth_task


GOOD: dict[str, Any] = {
    "name": "build",
    "steps": [
        {"name": "compile", "run": ["make"]},
        {"name": "test", "run": ["make", "test"], "needs": ["compile"]},
    ],
}
