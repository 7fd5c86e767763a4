"""The caller's own API keys: list them, issue one more, revoke one.

Keys belong to a principal, not a project: a caller sees and changes its own keys only,
and another principal's key id is not even named (404). Revoking a key stops it getting
tokens at once; the tokens it already got expire within their lifetime (15 minutes).
"""

import re
from collections.abc import Awaitable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiop.contracts.endpoints import ISSUE_KEY, LIST_KEYS, REVOKE_KEY, Endpoint
from aiop.contracts.queries import KeyRevocation, KeysRequest
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, ask_service, authenticated
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
KEY_ID = re.compile(r"^[0-9a-f]{12}$")
KINDS = {404: "not-found"}  # no such key, or a principal auth no longer knows


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/keys")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: json_reply("ApiKeyList", "The caller's keys, revoked ones included"),
            **problems(401, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_keys(caller: Caller) -> Response:
        return Response(
            await _ask(gw, LIST_KEYS, KeysRequest(principal=caller.sub)), media_type=JSON
        )

    @api.post(
        "", status_code=201,
        responses={
            201: json_reply("IssuedKey", "A new key: shown this once, stored only as a hash"),
            **problems(401, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def issue_key(caller: Caller) -> Response:
        body = await _ask(gw, ISSUE_KEY, KeysRequest(principal=caller.sub))
        return Response(body, 201, media_type=JSON)

    @api.delete(
        "/{key_id}",
        responses={
            200: json_reply("ApiKeyView", "The key, revoked"),
            **problems(400, 401, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def revoke_key(key_id: str, caller: Caller) -> Response:
        if not KEY_ID.match(key_id):
            raise Problem(400, f"{key_id!r} is not a key id (12 hex digits)", kind="bad-key-id")
        ask = KeyRevocation(principal=caller.sub, key_id=key_id)
        return Response(await _ask(gw, REVOKE_KEY, ask), media_type=JSON)

    return api


def _ask(gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct) -> Awaitable[bytes]:
    return ask_service(gw, endpoint, request, "auth", KINDS)
