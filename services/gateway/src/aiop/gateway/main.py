"""gateway: the HTTP API. FastAPI under uvicorn; its bus side (publishing submissions,
asking auth, task-manager and reporter) is a Service like every other service's."""

import asyncio
import logging
from pathlib import Path

from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import AliasChoices, Field
from starlette.types import ASGIApp

from aiop.contracts.cache import KV_STEP_CACHE, OBJ_OUTPUTS
from aiop.contracts.cancels import CANCEL_TTL_S
from aiop.contracts.endpoints import (
    AUTHORIZE,
    DELETE_TRIGGER,
    GET_REPORT,
    GET_RUN_SOURCE,
    GET_TRIGGER,
    GET_WORKFLOW,
    GRANT_PROJECT,
    ISSUE_KEY,
    ISSUE_TOKEN,
    JWKS,
    LIST_EVENTS,
    LIST_KEYS,
    LIST_TRIGGERS,
    LIST_WORKFLOWS,
    PROJECT_ENDPOINTS,
    PRUNE_WORKFLOWS,
    REVOKE_KEY,
    SAVE_TRIGGER,
    WORKFLOW_STATS,
)
from aiop.contracts.events import StepOutputAppended, WorkflowSubmitted
from aiop.contracts.secrets import load_public_key
from aiop.contracts.subjects import KV_CANCELS, KV_SECRETS, KV_TEMPLATES, STREAM_LOGS
from aiop.contracts.triggers import EXT_EVENTS, CloudEvent
from aiop.gateway import console
from aiop.gateway.adapters.http import HttpServer
from aiop.gateway.adapters.ratelimits import RateLimits
from aiop.gateway.adapters.step_cache import StepCache
from aiop.gateway.adapters.templates import install_builtins
from aiop.gateway.adapters.workflow_events import FOLLOWED
from aiop.gateway.agent_desk import serve_agents
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.domain.fleet import Fleet
from aiop.gateway.domain.tails import TailSlots
from aiop.gateway.fastpath import FinishedStatusFastPath
from aiop.gateway.guards import Guards
from aiop.gateway.handlers import mcp
from aiop.gateway.handlers.dead_letters import serve_dead_letters
from aiop.gateway.handlers.executors import follow_fleet
from aiop.gateway.handlers.schedules import ENDPOINTS as SCHEDULES
from aiop.gateway.handlers.stream import follow_streams
from aiop.gateway.handlers.webhooks import ENDPOINTS as WEBHOOKS
from aiop.servicekit import Service, ServiceSettings, open_bucket

# The repository's examples/templates, where the gateway runs from a checkout.
BUILTIN_TEMPLATES = Path(__file__).resolve().parents[5] / "examples" / "templates"
log = logging.getLogger("aiop.gateway")


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
    # The executors' public key (PEM), which secrets are sealed to; never the private key.
    # Without it the gateway stores no secrets (PUT /v1/secrets answers 503).
    secrets_public_key_file: Path | None = None
    # The built-in templates (<dir>/<name>/template.yaml), installed at start.
    templates_dir: Path | None = BUILTIN_TEMPLATES
    # Agents (docs/agents.md): a lease not heartbeated for this long is lost and its work
    # offered again; a poll for work waits this long by default.
    agent_lease_ttl_s: float = 30.0
    agent_poll_wait_s: float = 20.0
    # GET /v1/executors: an executor silent this long is dropped from the fleet table.
    executor_forget_s: float = 300.0
    # GET /v1/stream: live tails one caller may have open at once (each holds up to three
    # server-side consumers; each open console run list or event page is one); the next
    # is refused with 429 until one closes.
    max_tails_per_caller: int = Field(default=16, ge=1)


def bus_and_app(settings: GatewaySettings) -> tuple[Service, ASGIApp]:
    """The gateway's bus side and its HTTP app, not yet serving."""
    svc = Service("gateway", settings)
    svc.publishes(WorkflowSubmitted)
    svc.asks(JWKS, ISSUE_TOKEN, AUTHORIZE, GET_WORKFLOW, LIST_WORKFLOWS, GET_REPORT)
    svc.asks(GET_RUN_SOURCE, GRANT_PROJECT, PRUNE_WORKFLOWS, *PROJECT_ENDPOINTS)
    svc.purges(STREAM_LOGS)  # the logs of runs it removed (DELETE /v1/workflows)
    svc.asks(LIST_KEYS, ISSUE_KEY, REVOKE_KEY)
    svc.asks(*SCHEDULES)  # task-manager keeps and fires them
    svc.asks(SAVE_TRIGGER, GET_TRIGGER, LIST_TRIGGERS, DELETE_TRIGGER, LIST_EVENTS)
    svc.asks(*WEBHOOKS)  # the reporter keeps and delivers them
    svc.publishes_to(EXT_EVENTS, CloudEvent)  # POST /v1/events, for task-manager's triggers
    svc.uses_bucket(KV_CANCELS)  # a cancel request is a key there
    svc.uses_bucket(KV_SECRETS)  # sealed secrets: written, listed, deleted; never opened
    svc.uses_bucket(KV_TEMPLATES)  # templates: registered, listed, rendered
    svc.follows(StepOutputAppended)  # GET /v1/workflows/{id}/logs, one workflow per read
    svc.follows(*FOLLOWED)  # GET /v1/workflows/{id}/events, one workflow per read
    svc.uses_bucket(KV_STEP_CACHE)  # aiop cache ls|rm|prune
    svc.uses_object_store(OBJ_OUTPUTS)  # prune removes outputs no entry names
    limits = RateLimits(
        settings.rate_limit_per_principal,
        settings.rate_limit_per_address,
        settings.rate_limit_token_requests,
    )
    gw = Gateway(svc, settings.max_body_bytes, limits, trace_dir=settings.trace_dir,
                 fleet=Fleet(settings.executor_forget_s),
                 tails=TailSlots(settings.max_tails_per_caller))  # fmt: skip
    follow_fleet(svc, gw)  # GET /v1/executors: heartbeats and circuit changes
    svc.asks(WORKFLOW_STATS)  # GET /v1/stats: task-manager counts in PostgreSQL

    async def open_cancels() -> None:
        gw.cancels = await open_bucket(
            svc.js, KV_CANCELS, replicas=settings.stream_replicas, ttl_s=CANCEL_TTL_S
        )

    async def open_secrets() -> None:
        if settings.secrets_public_key_file is not None:
            gw.sealing_key = load_public_key(settings.secrets_public_key_file.read_bytes())
        gw.secrets = await open_bucket(svc.js, KV_SECRETS, replicas=settings.stream_replicas)

    async def open_step_cache() -> None:
        gw.step_cache = await StepCache.open(svc.js, settings.stream_replicas)

    async def open_templates() -> None:
        kv = await open_bucket(svc.js, KV_TEMPLATES, replicas=settings.stream_replicas)
        folder = settings.templates_dir
        if folder is not None and folder.is_dir():
            log.info("built-in templates: %s", ", ".join(await install_builtins(kv, folder)))
        gw.templates = kv

    svc.on_start(open_cancels)
    svc.on_start(open_templates)
    svc.on_start(open_step_cache)
    svc.on_start(open_secrets)
    serve_dead_letters(svc, gw, settings.stream_replicas)  # GET /v1/dead-letters, replays
    follow_streams(svc)  # GET /v1/stream: the live tail
    serve_agents(svc, gw, settings.agent_lease_ttl_s, settings.agent_poll_wait_s,
                 settings.stream_replicas)  # fmt: skip
    return svc, http_app(gw, settings.stream_replicas)


def http_app(gw: Gateway, replicas: int = 1) -> ASGIApp:
    app = create_app(gw)
    # One server span per request; publishes and queries inside it continue its trace.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz", exclude_spans=["receive", "send"]
    )
    served = Guards(FinishedStatusFastPath(app, gw, trace.get_tracer("aiop.gateway")), gw.limits)
    mcp.mount(app, served, gw)  # its tools call `served` in-process: guards, limits and all
    console.mount(app, served, gw, replicas)  # /ui: its pages call `served` the same way
    return served


def build(settings: GatewaySettings) -> Service:
    svc, app = bus_and_app(settings)
    server = HttpServer(app, settings.host, settings.port)
    svc.on_start(server.start)  # ready (answering pings) only once it accepts connections
    svc.on_stop(server.stop)  # before the connection closes: requests in flight may publish
    return svc


def run() -> None:
    asyncio.run(build(GatewaySettings()).run())
