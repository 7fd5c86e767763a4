"""gateway: the HTTP API. FastAPI under uvicorn, with a NATS broker only for publishing
submissions and asking other services (auth, task-manager, reporter)."""

import asyncio
import logging
import socket

import uvicorn
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import AliasChoices, Field
from starlette.types import ASGIApp

from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.fastpath import FinishedStatusFastPath
from aiop.servicekit import ServiceSettings, ensure_streams, make_broker, rpc, setup_tracing
from aiop.servicekit.app import configure_logging

log = logging.getLogger("aiop.gateway")


class GatewaySettings(ServiceSettings):
    host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("AIOP_GATEWAY_HOST", "host")
    )
    port: int = Field(default=8080, validation_alias=AliasChoices("AIOP_GATEWAY_PORT", "port"))
    max_body_bytes: int = 1024 * 1024


class _Server(uvicorn.Server):
    """uvicorn has no "listening" signal of its own."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


def build(settings: GatewaySettings) -> tuple[ASGIApp, Gateway]:
    provider = setup_tracing("gateway", settings.trace_dir)
    broker, bus = make_broker("gateway", settings.nats_url, provider)
    gw = Gateway(broker, bus, settings.max_body_bytes)
    app = create_app(gw)
    # One server span per request; publishes and queries inside it continue its trace.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz", exclude_spans=["receive", "send"]
    )
    return FinishedStatusFastPath(app, gw, provider.get_tracer("aiop.gateway")), gw


async def connect(gw: Gateway, settings: GatewaySettings) -> None:
    await gw.broker.start()
    await ensure_streams(gw.nc.jetstream(), settings.stream_replicas)


async def serve(settings: GatewaySettings) -> None:
    configure_logging(settings, "gateway")
    app, gw = build(settings)
    await connect(gw, settings)
    config = uvicorn.Config(
        app, settings.host, settings.port, log_config=None, access_log=False, lifespan="off"
    )
    server = _Server(config)
    http = asyncio.create_task(server.serve())
    listening = asyncio.create_task(server.listening.wait())
    service = None
    try:
        await asyncio.wait({http, listening}, return_when=asyncio.FIRST_COMPLETED)
        if server.listening.is_set():
            # Ready (for `aiop up`) only once uvicorn accepts connections.
            service = await rpc.serve(gw.nc, "gateway")
            log.info("listening on http://%s:%d", settings.host, settings.port)
        await http
    finally:
        listening.cancel()
        if service is not None:
            await service.stop()
        await gw.broker.stop()


def main() -> None:
    asyncio.run(serve(GatewaySettings()))
