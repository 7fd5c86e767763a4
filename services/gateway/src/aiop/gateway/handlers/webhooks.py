"""/v1/webhooks: a project's webhooks and their deliveries, kept and delivered by the
reporter (aiop.contracts.webhooks says what a webhook is; docs/webhooks.md what it
receives). Another project's webhooks are not even named (404)."""

from collections.abc import Awaitable, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from aiop.contracts.endpoints import (
    CREATE_WEBHOOK,
    DELETE_WEBHOOK,
    GET_WEBHOOK,
    LIST_DELIVERIES,
    LIST_WEBHOOKS,
    REDELIVER,
    UPDATE_WEBHOOK,
    Endpoint,
)
from aiop.contracts.triggers import DEFAULT_PROJECT
from aiop.contracts.webhooks import (
    MAX_DELIVERIES,
    DeliveriesQuery,
    DeliveryRef,
    NewWebhook,
    WebhookChange,
    WebhookIn,
    WebhookPatch,
    WebhookRef,
    WebhooksQuery,
    check_webhook,
)
from aiop.gateway.access import checked, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, ask_service, authenticated, request_json
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
ENDPOINTS = (CREATE_WEBHOOK, UPDATE_WEBHOOK, GET_WEBHOOK, LIST_WEBHOOKS, DELETE_WEBHOOK,
             LIST_DELIVERIES, REDELIVER)  # fmt: skip
# What the reporter's refusals mean here.
KINDS = {400: "bad-request", 404: "not-found", 409: "conflict", 422: "invalid-webhook"}
S = TypeVar("S", bound=msgspec.Struct)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/webhooks")
    Caller = Annotated[Claims, Depends(authenticated(gw))]
    Limit = Annotated[int, Query(ge=1, le=MAX_DELIVERIES, description="At most this many.")]
    one = {**problems(400, 401, 403, 404, 429, 431, 502, 503)}

    @api.post(
        "",
        status_code=201,
        responses={
            201: json_reply("WebhookCreated", "Created; its secret is shown this once"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("WebhookIn"), **BEARER},
    )
    async def create_webhook(
        request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        """Deliver the project's events of the types named to a URL, signed."""
        project = await project_for(gw, caller, project, "webhook:write")
        given = _body(await request_json(gw, request), WebhookIn)
        _valid(given.url, given.events)
        ask = NewWebhook(project=project, webhook=given, created_by=caller.sub)
        return Response(await _ask(gw, CREATE_WEBHOOK, ask), 201, media_type=JSON)

    @api.get(
        "",
        responses={200: json_reply("WebhookList", "The project's webhooks"), **one},
        openapi_extra=BEARER,
    )
    async def list_webhooks(caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "webhook:read")
        reply = await _ask(gw, LIST_WEBHOOKS, WebhooksQuery(project=project))
        return Response(reply, media_type=JSON)

    @api.get(
        "/{webhook_id}",
        responses={200: json_reply("Webhook", "The webhook (never its secret)"), **one},
        openapi_extra=BEARER,
    )
    async def show_webhook(
        webhook_id: str, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        ref = await _ref(gw, caller, webhook_id, project, "webhook:read")
        return Response(await _ask(gw, GET_WEBHOOK, ref), media_type=JSON)

    @api.patch(
        "/{webhook_id}",
        responses={
            200: json_reply("Webhook", "Changed"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("WebhookPatch"), **BEARER},
    )
    async def change_webhook(
        webhook_id: str, request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        """Change the URL, events or description, or enable or disable it. Enabling a
        webhook the platform disabled starts its count of failures over."""
        ref = await _ref(gw, caller, webhook_id, project, "webhook:write")
        patch = _body(await request_json(gw, request), WebhookPatch)
        _valid(patch.url, patch.events)
        ask = WebhookChange(project=ref.project, id=ref.id, patch=patch)
        return Response(await _ask(gw, UPDATE_WEBHOOK, ask), media_type=JSON)

    @api.delete(
        "/{webhook_id}",
        responses={200: json_reply("Webhook", "Deleted: nothing more is delivered"), **one},
        openapi_extra=BEARER,
    )
    async def delete_webhook(
        webhook_id: str, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        ref = await _ref(gw, caller, webhook_id, project, "webhook:write")
        return Response(await _ask(gw, DELETE_WEBHOOK, ref), media_type=JSON)

    @api.get(
        "/{webhook_id}/deliveries",
        responses={
            200: json_reply("DeliveryList", "Its deliveries, newest first, each attempt"),
            **problems(400, 401, 403, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def webhook_deliveries(
        webhook_id: str, caller: Caller, project: str = DEFAULT_PROJECT, limit: Limit = 50
    ) -> Response:
        ref = await _ref(gw, caller, webhook_id, project, "webhook:read")
        ask = DeliveriesQuery(project=ref.project, id=ref.id, limit=limit)
        return Response(await _ask(gw, LIST_DELIVERIES, ask), media_type=JSON)

    @api.post(
        "/{webhook_id}/deliveries/{delivery_id}/redeliver",
        status_code=202,
        responses={
            202: json_reply("WebhookDelivery", "Queued: a new series of attempts, same id"),
            **problems(400, 401, 403, 404, 409, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def redeliver(
        webhook_id: str, delivery_id: str, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        """Deliver a delivery again (one that failed, say, once the receiver is fixed)."""
        ref = await _ref(gw, caller, webhook_id, project, "webhook:write")
        checked(delivery_id, "delivery id", "bad-delivery-id")
        ask = DeliveryRef(project=ref.project, id=ref.id, delivery_id=delivery_id)
        return Response(await _ask(gw, REDELIVER, ask), 202, media_type=JSON)

    return api


async def _ref(gw: Gateway, caller: Claims, webhook_id: str, project: str, action: str) -> WebhookRef:  # fmt: skip
    checked(webhook_id, "webhook id", "bad-webhook-id")
    return WebhookRef(project=await project_for(gw, caller, project, action), id=webhook_id)


def _body(raw: Any, kind: type[S]) -> S:
    """The body as ``kind``; a 422 saying what is wrong if it is not one."""
    if not isinstance(raw, dict):
        raise Problem(422, "the body must be a JSON object", kind="validation")
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise Problem(422, f"not a webhook: {exc}", kind="validation") from None


def _valid(url: str | None, events: Sequence[str] | None) -> None:
    found = check_webhook(url, events)
    if found:
        raise Problem(422, "; ".join(found), kind="invalid-webhook",
                      errors=[{"detail": p} for p in found])  # fmt: skip


def _ask(gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct) -> Awaitable[bytes]:
    return ask_service(gw, endpoint, request, "reporter", KINDS)
