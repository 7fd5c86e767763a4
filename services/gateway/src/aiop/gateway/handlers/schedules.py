"""Cron schedules: POST/GET /v1/schedules, GET/DELETE /v1/schedules/{name},
POST /v1/schedules/{name}/pause|resume, each in ``?project=P``.

task-manager keeps and fires them; the gateway checks who asks and in which project, and
turns task-manager's answers into problem details. Another project's schedules are not
even named (404).
"""

import re
from collections.abc import Awaitable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts import endpoints
from aiop.contracts.endpoints import Endpoint
from aiop.contracts.schedules import (
    ScheduleCreate,
    ScheduleEnabling,
    ScheduleIn,
    ScheduleListQuery,
    ScheduleRef,
    target_problem,
)
from aiop.contracts.secrets import DEFAULT_PROJECT
from aiop.gateway.access import checked, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, ask_service, authenticated, read_body
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
_WHERE = re.compile(r"at `\$\.?([^`]*)`")  # msgspec's "... - at `$.policy`"
KINDS = {404: "not-found", 409: "conflict", 422: "invalid-schedule"}
ENDPOINTS = (
    endpoints.CREATE_SCHEDULE, endpoints.LIST_SCHEDULES, endpoints.GET_SCHEDULE,
    endpoints.DELETE_SCHEDULE, endpoints.ENABLE_SCHEDULE,
)  # fmt: skip


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/schedules")
    Caller = Annotated[Claims, Depends(authenticated(gw))]
    one = {**problems(400, 401, 403, 404, 429, 431, 502, 503)}

    @api.post(
        "", status_code=201,
        responses={
            201: json_reply("ScheduleView", "Created; it fires at next_at"),
            **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("ScheduleIn"), **BEARER},
    )  # fmt: skip
    async def create_schedule(
        request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        project = await project_for(gw, caller, project, "schedule:write")
        given = _schedule_in(await read_body(request, gw.max_body_bytes))
        ask = ScheduleCreate(project=project, principal=caller.sub, schedule=given)
        return Response(await _ask(gw, endpoints.CREATE_SCHEDULE, ask), 201, media_type=JSON)

    @api.get(
        "",
        responses={
            200: json_reply("ScheduleList", "The project's schedules and when each fires next"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_schedules(caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "schedule:read")
        ask = ScheduleListQuery(project=project)
        return Response(await _ask(gw, endpoints.LIST_SCHEDULES, ask), media_type=JSON)

    @api.get(
        "/{name}",
        responses={200: json_reply("ScheduleView", "The schedule and its latest ticks"), **one},
        openapi_extra=BEARER,
    )
    async def show_schedule(name: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        ask = await _ref(gw, caller, project, name, "schedule:read")
        return Response(await _ask(gw, endpoints.GET_SCHEDULE, ask), media_type=JSON)

    @api.delete(
        "/{name}",
        responses={200: json_reply("ScheduleView", "Deleted; it fires no more"), **one},
        openapi_extra=BEARER,
    )
    async def delete_schedule(
        name: str, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        ask = await _ref(gw, caller, project, name, "schedule:write")
        return Response(await _ask(gw, endpoints.DELETE_SCHEDULE, ask), media_type=JSON)

    @api.post(
        "/{name}/pause",
        responses={200: json_reply("ScheduleView", "Paused: no tick fires until resumed"), **one},
        openapi_extra=BEARER,
    )
    async def pause_schedule(name: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        return await _enable(gw, caller, project, name, enabled=False)

    @api.post(
        "/{name}/resume",
        responses={200: json_reply("ScheduleView", "Resumed from its next tick after now"), **one},
        openapi_extra=BEARER,
    )
    async def resume_schedule(
        name: str, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        return await _enable(gw, caller, project, name, enabled=True)

    return api


async def _enable(gw: Gateway, caller: Claims, project: str, name: str, enabled: bool) -> Response:
    ref = await _ref(gw, caller, project, name, "schedule:write")
    ask = ScheduleEnabling(project=ref.project, name=ref.name, enabled=enabled)
    return Response(await _ask(gw, endpoints.ENABLE_SCHEDULE, ask), media_type=JSON)


async def _ref(gw: Gateway, caller: Claims, project: str, name: str, action: str) -> ScheduleRef:
    checked(name, "schedule name", "bad-schedule-name")
    return ScheduleRef(project=await project_for(gw, caller, project, action), name=name)


def _schedule_in(body: bytes) -> ScheduleIn:
    try:
        given = msgspec.json.decode(body, type=ScheduleIn)
    except msgspec.ValidationError as exc:
        found = _WHERE.search(str(exc))
        pointer = "/" + found.group(1).replace(".", "/") if found else ""
        raise Problem(422, f"not a schedule: {exc}", kind="validation",
                      errors=[{"pointer": pointer, "detail": str(exc)}]) from None  # fmt: skip
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None
    problem = target_problem(given)  # a template or a task, exactly one
    if problem is not None:
        raise Problem(422, problem, kind="validation", errors=[{"pointer": "", "detail": problem}])
    return given


def _ask(gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct) -> Awaitable[bytes]:
    return ask_service(gw, endpoint, request, "task-manager", KINDS)
