"""The FastAPI app: problem details for every error, and the routes."""

from fastapi import FastAPI
from starlette.responses import Response

from aiop.gateway import openapi, problems
from aiop.gateway.context import Gateway
from aiop.gateway.handlers import (
    agent_work,
    agents,
    cache,
    dead_letters,
    executors,
    history,
    keys,
    logs,
    projects,
    reruns,
    retention,
    schedules,
    secrets,
    stats,
    stream,
    templates,
    tokens,
    trace,
    workflow_events,
    workflows,
)
from aiop.gateway.handlers import events as external_events
from aiop.gateway.handlers import triggers as trigger_routes
from aiop.gateway.handlers import webhooks as webhook_routes


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(title="AIOP gateway", version="0.1.0")
    problems.install(app)
    app.include_router(tokens.router(gw))
    app.include_router(history.router(gw))  # GET /v1/workflows, before /{workflow_id}
    app.include_router(retention.router(gw))  # DELETE /v1/workflows
    app.include_router(workflows.router(gw))
    app.include_router(reruns.router(gw))
    app.include_router(projects.router(gw))
    app.include_router(projects.task_router(gw))
    app.include_router(logs.router(gw))
    app.include_router(workflow_events.router(gw))
    app.include_router(cache.router(gw))
    app.include_router(executors.router(gw))
    app.include_router(stats.router(gw))
    app.include_router(trace.router(gw))
    app.include_router(keys.router(gw))
    app.include_router(secrets.router(gw))
    app.include_router(templates.router(gw))
    app.include_router(schedules.router(gw))
    app.include_router(trigger_routes.router(gw))
    app.include_router(webhook_routes.router(gw))
    app.include_router(external_events.router(gw))
    app.include_router(agents.router(gw))
    app.include_router(agent_work.router(gw))
    app.include_router(dead_letters.router(gw))
    app.include_router(stream.router(gw))

    @app.get("/healthz", responses=openapi.problems(431))
    async def healthz() -> Response:
        """Whether the gateway answers; no token needed, never rate limited."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    openapi.install(app)
    return app
