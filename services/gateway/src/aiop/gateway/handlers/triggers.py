"""POST/GET /v1/triggers, GET/DELETE /v1/triggers/{name}: a project's triggers, kept by
task-manager (aiop.contracts.triggers says what a trigger is). Another project's
triggers are not even named (404)."""

from collections.abc import Awaitable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts.endpoints import (
    DELETE_TRIGGER,
    GET_TRIGGER,
    LIST_TRIGGERS,
    SAVE_TRIGGER,
    Endpoint,
)
from aiop.contracts.triggers import (
    DEFAULT_PROJECT,
    Trigger,
    TriggerRef,
    TriggerSaved,
    TriggersQuery,
    check_trigger,
)
from aiop.gateway.access import checked, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, ask_service, authenticated, request_json
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
_saved = msgspec.json.Decoder(TriggerSaved)
KINDS = {404: "not-found", 422: "invalid-trigger"}


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/triggers")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.post(
        "",
        responses={
            201: json_reply("Trigger", "Created"),
            200: json_reply("Trigger", "Replaced the trigger of the same name"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("Trigger"), **BEARER},
    )
    async def save_trigger(
        request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        project = await project_for(gw, caller, project, "trigger:write")
        trigger = _trigger_in(await request_json(gw, request), project, caller.sub)
        saved = _saved.decode(await _ask(gw, SAVE_TRIGGER, trigger))
        body = msgspec.json.encode(saved.trigger)
        return Response(body, 201 if saved.created else 200, media_type=JSON)

    @api.get(
        "",
        responses={
            200: json_reply("TriggerList", "The project's triggers"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_triggers(caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "trigger:read")
        reply = await _ask(gw, LIST_TRIGGERS, TriggersQuery(project=project))
        return Response(reply, media_type=JSON)

    @api.get(
        "/{name}",
        responses={
            200: json_reply("Trigger", "The trigger"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def show_trigger(name: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        ref = await _ref(gw, caller, name, project, "trigger:read")
        return Response(await _ask(gw, GET_TRIGGER, ref), media_type=JSON)

    @api.delete(
        "/{name}",
        responses={
            200: json_reply("Trigger", "Deleted: it starts nothing more"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def delete_trigger(name: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        ref = await _ref(gw, caller, name, project, "trigger:write")
        return Response(await _ask(gw, DELETE_TRIGGER, ref), media_type=JSON)

    return api


async def _ref(gw: Gateway, caller: Claims, name: str, project: str, action: str) -> TriggerRef:
    checked(name, "trigger name", "bad-trigger-name")
    return TriggerRef(project=await project_for(gw, caller, project, action), name=name)


def _trigger_in(raw: Any, project: str, principal: str) -> Trigger:
    """The body of a POST as a trigger of ``project``; a 422 with every problem if not."""
    if not isinstance(raw, dict):
        raise Problem(422, "the body must be a trigger object", kind="validation")
    if raw.get("project", project) != project:
        raise Problem(422, f"the body names project {raw['project']!r}, the query {project!r}",
                      kind="validation")  # fmt: skip
    fields = {k: v for k, v in raw.items() if k not in ("created_at", "updated_at")}
    try:
        trigger = msgspec.convert({**fields, "project": project, "created_by": principal}, Trigger)
    except msgspec.ValidationError as exc:
        raise Problem(422, f"not a trigger: {exc}", kind="validation") from None
    found = check_trigger(trigger)
    if found:
        raise Problem(422, "; ".join(found), kind="invalid-trigger",
                      errors=[{"detail": p} for p in found])  # fmt: skip
    return trigger


def _ask(gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct) -> Awaitable[bytes]:
    return ask_service(gw, endpoint, request, "task-manager", KINDS)
