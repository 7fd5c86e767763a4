"""/mcp: AIOP's MCP server (``aiop.mcp``) over streamable HTTP, for agents.

A request needs a bearer token, checked as every route checks it (a 401 without a good
one, a 429 past the caller's limits); its tools then call this API in-process, through
the app the gateway serves, with that same token. What they see and do is what the
token may over HTTP, and each call counts against the caller's limits as one over HTTP.
"""

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.problems import Problem, problem_response
from aiop.mcp.http import StreamableHttp

PATH = "/mcp"


def mount(app: FastAPI, served: ASGIApp, gw: Gateway) -> None:
    """Serve MCP at PATH of ``app``; its tools call ``served``, the app around it."""
    caller = authenticated(gw)

    async def refuse(request: Request) -> Response | None:
        try:
            await caller(request)
        except Problem as problem:
            return problem_response(problem, request.url.path)
        return None

    endpoint = StreamableHttp(served, refuse)
    gw.svc.on_start(endpoint.start)
    gw.svc.on_stop(endpoint.stop)
    # A route, not a mount: a mount answers /mcp with a redirect to /mcp/. Not in the
    # OpenAPI document, which describes the HTTP API only.
    app.router.routes.append(Route(PATH, endpoint))
