"""POST /v1/tokens: an API key exchanged for a short-lived access token."""

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from aiop.contracts.endpoints import ISSUE_TOKEN
from aiop.contracts.queries import TokenRequest
from aiop.gateway.context import Gateway, read_body, upstream
from aiop.gateway.domain.submission import MalformedBody, decode_json
from aiop.gateway.openapi import json_body, json_reply, problems
from aiop.gateway.problems import Problem, unauthorized
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"


def router(gw: Gateway) -> APIRouter:
    api = APIRouter()

    @api.post(
        "/v1/tokens",
        responses={
            200: json_reply("TokenReply", "A short-lived access token for the key's principal"),
            **problems(400, 401, 403, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra=json_body("TokenRequest"),
    )
    async def tokens(request: Request) -> Response:
        """Exchange an API key for a short-lived access token (no bearer token needed)."""
        try:
            ask = msgspec.convert(
                decode_json(await read_body(request, gw.max_body_bytes)), TokenRequest
            )
        except MalformedBody as exc:
            raise Problem(400, f"the body is not JSON: {exc}", kind="malformed") from exc
        except msgspec.ValidationError as exc:
            raise Problem(422, str(exc), kind="validation") from exc
        try:
            # auth's TokenReply is exactly the response body.
            return Response(await gw.svc.ask(ISSUE_TOKEN, ask), media_type=JSON)
        except QueryFailed as exc:
            if exc.code == 401:
                raise unauthorized("unknown API key", error="") from exc
            if exc.code == 403:
                raise Problem(403, exc.description, kind="forbidden") from exc
            raise upstream(exc, "auth") from exc

    return api
