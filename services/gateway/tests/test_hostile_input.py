"""Malformed requests over a real connection: each gets its 4xx problem answer, and the
same keep-alive connection serves the next request."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import pytest

from aiop.auth.main import AuthSettings
from aiop.auth.main import build as build_auth
from aiop.devstack import free_port
from aiop.gateway.main import GatewaySettings
from aiop.gateway.main import build as build_gateway
from aiop.servicekit.rpc import wait_ready

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers["content-type"] == "application/problem+json", self
        return msgspec.json.decode(self.body)


class Connection:
    """One HTTP/1.1 keep-alive connection, spoken by hand so that nothing reconnects."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), 10)
        assert status_line, "the gateway closed the connection"
        got: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        content = await self.reader.readexactly(int(got.get("content-length", "0")))
        return Reply(int(status_line.split()[1]), got, content)

    async def still_serves(self) -> None:
        reply = await self.send("GET", "/healthz")
        assert (reply.status, reply.body) == (200, b'{"status":"ok"}')


@dataclass
class Gateway:
    port: int
    token: str

    async def connection(self) -> Connection:
        return Connection(*await asyncio.open_connection("127.0.0.1", self.port))


@pytest.fixture
async def gateway(nats_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    """Auth and the whole gateway, HTTP server included, on a free port."""
    auth = build_auth(
        AuthSettings(nats_url=nats_url, auth_dir=tmp_path / "auth", dev_key_file=tmp_path / "k")
    )
    port = free_port()
    gw = build_gateway(GatewaySettings(nats_url=nats_url, port=port, max_body_bytes=MAX_BODY))
    await auth.start()
    await gw.start()
    nc = await nats.connect(nats_url)
    try:
        await wait_ready(nc, "gateway", timeout=10)
        conn = await Gateway(port, "").connection()
        key = (tmp_path / "k").read_text().strip()
        reply = await conn.send("POST", "/v1/tokens", msgspec.json.encode({"api_key": key}))
        yield Gateway(port, msgspec.json.decode(reply.body)["token"])
    finally:
        await nc.close()
        await gw.stop()
        await auth.stop()


def workflow(**step: object) -> bytes:
    return msgspec.json.encode({"name": "w", "steps": [{"name": "s", "run": ["true"], **step}]})


async def test_each_malformed_request_is_a_4xx_and_the_connection_goes_on(
    gateway: Gateway,
) -> None:
    json_auth = {"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"}
    deep = b"[" * 1000 + b"]" * 1000
    cases: list[tuple[str, str, bytes, dict[str, str], int]] = [
        ("POST", "/v1/workflows", b'{"name": "\xff\xfe"}', json_auth, 400),  # not UTF-8
        ("POST", "/v1/tokens", b'{"api_key": "\xff"}', json_auth, 400),
        ("POST", "/v1/workflows", deep, json_auth, 400),  # nested 1,000 deep
        ("POST", "/v1/tokens", deep, json_auth, 400),
        ("POST", "/v1/workflows", workflow(run=["echo", "a\0b"]), json_auth, 422),  # NUL
        ("POST", "/v1/workflows", workflow(env={"K": "v\0"}), json_auth, 422),
        ("POST", "/v1/workflows", workflow(), {**json_auth, "Content-Type": "text/plain"}, 415),
        ("POST", "/v1/workflows", b"x" * (MAX_BODY + 1), json_auth, 413),
        ("GET", "/healthz", b"", {"X-Padding": "p" * 40_000}, 431),  # oversize headers
        ("GET", "/v1/workflows/a.b", b"", json_auth, 400),  # not a workflow id
        # A log position past any stream sequence (64 bits).
        ("GET", "/v1/workflows/wf-x/logs?after=3911985974300016921303580672", b"", json_auth, 422),
    ]
    conn = await gateway.connection()
    for method, path, body, headers, status in cases:
        reply = await conn.send(method, path, body, headers)
        assert reply.status == status, (path, body[:40], reply)
        assert reply.problem()["status"] == status
        await conn.still_serves()


async def test_a_nul_byte_names_where_it_is(gateway: Gateway) -> None:
    json_auth = {"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"}
    conn = await gateway.connection()
    reply = await conn.send("POST", "/v1/workflows", workflow(run=["a\0"]), json_auth)
    assert reply.problem()["errors"] == [{"detail": "step 's' argv holds a NUL character"}]
