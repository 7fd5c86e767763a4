"""The FastAPI app: routes, problem details, and the token exchange."""

import msgspec
from fastapi import FastAPI, Request
from starlette.responses import Response

from aiop.contracts.queries import TokenRequest
from aiop.contracts.subjects import AUTH_TOKEN
from aiop.gateway import problems, workflows
from aiop.gateway.context import Gateway, read_body, upstream
from aiop.gateway.problems import Problem, unauthorized
from aiop.servicekit import rpc
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
_token_request = msgspec.json.Decoder(TokenRequest)


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(title="AIOP gateway", version="0.1.0")
    problems.install(app)
    app.include_router(workflows.router(gw))

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.post("/v1/tokens")
    async def tokens(request: Request) -> Response:
        """Exchange an API key for a short-lived access token (no bearer token needed)."""
        try:
            ask = _token_request.decode(await read_body(request, gw.max_body_bytes))
        except msgspec.ValidationError as exc:
            raise Problem(422, str(exc), kind="validation") from exc
        except msgspec.DecodeError as exc:
            raise Problem(400, f"the body is not JSON: {exc}", kind="malformed") from exc
        try:
            return Response(await request_token(gw, ask), media_type=JSON)
        except QueryFailed as exc:
            if exc.code == 401:
                raise unauthorized("unknown API key", error="") from exc
            raise upstream(exc, "auth") from exc

    return app


async def request_token(gw: Gateway, ask: TokenRequest) -> bytes:
    # auth's TokenReply is exactly the response body: {token, expires_at, principal, projects}.
    return await rpc.request(gw.nc, AUTH_TOKEN, ask)
