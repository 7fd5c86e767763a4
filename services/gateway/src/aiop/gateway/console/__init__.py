"""The operator console at /ui: server-rendered pages over the HTTP API, kept live over
Server-Sent Events (docs/console.md, ADR 0016)."""

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from aiop.contracts.subjects import KV_CONSOLE_SESSIONS
from aiop.gateway.console import (
    config,
    config_keys,
    config_templates,
    config_webhooks,
    events,
    fleet,
    run_pages,
    runs,
    signin,
)
from aiop.gateway.console.sessions import SESSION_TTL_S
from aiop.gateway.console.web import (
    HERE,
    PREFIX,
    SECURITY_HEADERS,
    Console,
    Refused,
    SignIn,
    sign_in_redirect,
)
from aiop.gateway.context import Gateway
from aiop.servicekit import open_bucket


def mount(app: FastAPI, served: ASGIApp, gw: Gateway, replicas: int = 1) -> Console:
    """Serve the console under PREFIX of ``app``; its pages call ``served``, the app around
    it, in-process. Not in the OpenAPI document, which describes the HTTP API only."""
    console = Console(gw, served)
    gw.svc.uses_bucket(KV_CONSOLE_SESSIONS)

    async def open_sessions() -> None:
        console.sessions.kv = await open_bucket(
            gw.svc.js, KV_CONSOLE_SESSIONS, replicas=replicas, ttl_s=SESSION_TTL_S
        )

    gw.svc.on_start(open_sessions)
    pages = (fleet, events, config, config_templates, config_keys, config_webhooks)
    for module in (signin, runs, run_pages, *pages):
        app.include_router(module.router(console), include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    # A Problem raised by a console page is an API answer; these two are the console's own.
    async def on_sign_in(request: Request, exc: Exception) -> Response:
        if request.headers.get("accept") == "text/event-stream":
            return Response(status_code=204)  # a live stream of a session that ended: stop
        return sign_in_redirect(request)

    async def on_refused(request: Request, exc: Exception) -> Response:
        page = console.env.get_template("refused.html").render(prefix=PREFIX, reason=str(exc))
        return HTMLResponse(page, status_code=403, headers=SECURITY_HEADERS)

    app.add_exception_handler(SignIn, on_sign_in)
    app.add_exception_handler(Refused, on_refused)
    return console
