"""POST /v1/events: a CloudEvent 1.0 from a system outside, in binary mode (``ce-*``
headers, the data as the body) or structured mode (``application/cloudevents+json``),
published on ``ext.<source>.<type>`` for task-manager's triggers. GET /v1/events: the
events task-manager recorded, with what each started."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from aiop.contracts.endpoints import LIST_EVENTS
from aiop.contracts.triggers import (
    DEFAULT_PROJECT,
    MAX_LIMIT,
    EventSent,
    EventsQuery,
    ext_msg_id,
    ext_subject,
)
from aiop.gateway.access import project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, upstream
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.cloudevents import NotACloudEvent, Unreadable, read_cloudevent, structured
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
CLOUDEVENT_BODY = {
    "requestBody": {
        "required": True,
        "description": f"Structured mode: the event as {STRUCTURED} (or {JSON} without"
        " ce-* headers). Binary mode: the attributes as ce-specversion, ce-id, ce-source,"
        " ce-type (and ce-subject, ce-time, ce-aiopproject) headers, the data as the body"
        " in its own content type.",
        "content": {
            STRUCTURED: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
            JSON: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
        },
    }
}


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/events")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.post(
        "",
        status_code=202,
        responses={
            202: json_reply("EventSent", "Published: task-manager records it and runs its triggers"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 503),
        },
        openapi_extra={**CLOUDEVENT_BODY, **BEARER},
    )  # fmt: skip
    async def send_event(
        request: Request,
        caller: Caller,
        project: Annotated[
            str | None, Query(description="Default: its aiopproject attribute, else default.")
        ] = None,
    ) -> Response:
        if project is not None:  # a project the caller may not use is refused unread
            project = await project_for(gw, caller, project, "event:publish")
        headers = dict(request.headers.items())
        binary = any(name.startswith("ce-") for name in headers)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        # Structured mode is application/cloudevents+json; plain JSON without ce-* headers
        # is read the same, for senders (webhooks) that cannot choose their content type.
        if not binary and kind not in (STRUCTURED, JSON):
            raise Problem(
                415, f"send ce-* headers (binary mode) or a {STRUCTURED} body, not {kind or 'none'}",
                kind="unsupported-media", headers={"Accept-Post": STRUCTURED},
            )  # fmt: skip
        body = await _body(request, gw.max_body_bytes)
        try:
            event = read_cloudevent(headers, body)
        except Unreadable as exc:
            raise Problem(400, str(exc), kind="malformed") from None
        except NotACloudEvent as exc:  # JSON, or headers, that say no valid CloudEvent
            raise Problem(422, str(exc), kind="bad-event") from None
        named = event.aiopproject
        if project is not None and named is not None and named != project:
            raise Problem(422, f"the event names project {named!r}, the query {project!r}",
                          kind="bad-event")  # fmt: skip
        chosen = project or await project_for(gw, caller, event.project, "event:publish")
        event = msgspec.structs.replace(event, aiopproject=chosen)
        subject = ext_subject(event.source, event.type)
        try:
            await gw.svc.send(subject, structured(event), {
                "Nats-Msg-Id": ext_msg_id(chosen, event.source, event.id),
                "content-type": STRUCTURED,
            })  # fmt: skip
        except Exception as exc:
            raise Problem(503, f"cannot publish the event: {type(exc).__name__}",
                          kind="unavailable") from exc  # fmt: skip
        sent = EventSent(
            id=event.id, source=event.source, type=event.type, project=chosen, subject=subject
        )
        return Response(msgspec.json.encode(sent), 202, media_type=JSON)

    @api.get(
        "",
        responses={
            200: json_reply("EventPage", "Recorded events, newest first, with what they started"),
            **problems(400, 401, 403, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def list_events(
        caller: Caller,
        project: str = DEFAULT_PROJECT,
        # No NUL: PostgreSQL keeps no such character, and refuses the query outright.
        type: Annotated[str | None, Query(description="Exact, or a prefix ending in *.", pattern=r"^[^\x00]{1,256}$")] = None,
        matched: Annotated[bool | None, Query(description="Some trigger matched it, or none did.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    ) -> Response:  # fmt: skip
        project = await project_for(gw, caller, project, "event:read")
        query = EventsQuery(project=project, type=type, matched=matched, limit=limit, cursor=cursor)
        try:
            return Response(await gw.svc.ask(LIST_EVENTS, query), media_type=JSON)
        except QueryFailed as exc:
            if exc.code == 400:
                raise Problem(400, exc.description, kind="bad-cursor") from exc
            raise upstream(exc, "task-manager") from exc

    return api


async def _body(request: Request, limit: int) -> bytes:
    """The body, whatever its type (binary mode carries data in its own), at most
    ``limit`` bytes whatever Content-Length claims."""
    too_large = Problem(413, f"the body is larger than {limit} bytes", kind="too-large")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise (
            too_large
            if length.isdigit()
            else Problem(400, "bad Content-Length", kind="bad-request")
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)
