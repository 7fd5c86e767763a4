"""gateway: the HTTP API. FastAPI under uvicorn; its bus side (publishing submissions,
asking auth, task-manager and reporter) is a Service like every other service's."""

import asyncio

from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import AliasChoices, Field
from starlette.types import ASGIApp

from aiop.contracts.cancels import CANCEL_TTL_S
from aiop.contracts.endpoints import (
    AUTHORIZE,
    GET_REPORT,
    GET_WORKFLOW,
    ISSUE_KEY,
    ISSUE_TOKEN,
    JWKS,
    LIST_KEYS,
    REVOKE_KEY,
)
from aiop.contracts.events import WorkflowSubmitted
from aiop.contracts.subjects import KV_CANCELS
from aiop.gateway.adapters.http import HttpServer
from aiop.gateway.adapters.ratelimits import RateLimits
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.fastpath import FinishedStatusFastPath
from aiop.gateway.guards import Guards
from aiop.servicekit import Service, ServiceSettings, open_bucket


class GatewaySettings(ServiceSettings):
    host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("AIOP_GATEWAY_HOST", "host")
    )
    port: int = Field(default=8080, validation_alias=AliasChoices("AIOP_GATEWAY_PORT", "port"))
    max_body_bytes: int = 1024 * 1024
    # Rate limits (docs/security.md): a burst and a sustained rate each, in the notation
    # "<count>/<second|minute|hour>" joined by ";"; empty switches one off.
    rate_limit_per_principal: str = "100/second;3000/minute"
    rate_limit_per_address: str = "300/second;9000/minute"
    rate_limit_token_requests: str = "5/second;30/minute"  # per address: guessing keys


def bus_and_app(settings: GatewaySettings) -> tuple[Service, ASGIApp]:
    """The gateway's bus side and its HTTP app, not yet serving."""
    svc = Service("gateway", settings)
    svc.publishes(WorkflowSubmitted)
    svc.asks(JWKS, ISSUE_TOKEN, AUTHORIZE, GET_WORKFLOW, GET_REPORT)
    svc.asks(LIST_KEYS, ISSUE_KEY, REVOKE_KEY)
    svc.uses_bucket(KV_CANCELS)  # a cancel request is a key there
    limits = RateLimits(
        settings.rate_limit_per_principal,
        settings.rate_limit_per_address,
        settings.rate_limit_token_requests,
    )
    gw = Gateway(svc, settings.max_body_bytes, limits)

    async def open_cancels() -> None:
        gw.cancels = await open_bucket(
            svc.js, KV_CANCELS, replicas=settings.stream_replicas, ttl_s=CANCEL_TTL_S
        )

    svc.on_start(open_cancels)
    return svc, http_app(gw)


def http_app(gw: Gateway) -> ASGIApp:
    app = create_app(gw)
    # One server span per request; publishes and queries inside it continue its trace.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz", exclude_spans=["receive", "send"]
    )
    return Guards(FinishedStatusFastPath(app, gw, trace.get_tracer("aiop.gateway")), gw.limits)


def build(settings: GatewaySettings) -> Service:
    svc, app = bus_and_app(settings)
    server = HttpServer(app, settings.host, settings.port)
    svc.on_start(server.start)  # ready (answering pings) only once it accepts connections
    svc.on_stop(server.stop)  # before the connection closes: requests in flight may publish
    return svc


def run() -> None:
    asyncio.run(build(GatewaySettings()).run())
