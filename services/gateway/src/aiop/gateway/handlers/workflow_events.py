"""GET /v1/workflows/{id}/events: the workflow's events (submitted, accepted, each step's
start and end, ...), whole as JSON, or followed live as Server-Sent Events until the
event that ended it."""

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.gateway.access import current_view, visible_view
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.adapters.workflow_events import ENDINGS, WorkflowEventPage, WorkflowEventReader
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.handlers.logs import JSON, KEEPALIVE_S, MAX_SEQ, SSE, STATE_EVERY_S, sse_event
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem

EVENT = {
    "type": "object",
    "description": "`event` events (id: the event's seq, data: a WorkflowEventEntry as JSON)"
    ' up to the one that ended the workflow, then one `end` event (data: {"state": ...})',
    "properties": {
        "event": {"enum": ["event", "end"]},
        "id": {"type": "string"},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "/{workflow_id}/events",
        responses={
            200: {
                **json_reply("WorkflowEventPage", "The events stored so far; with follow, or"
                             " Accept: text/event-stream, an event stream instead"),
                "content": {
                    JSON: {"schema": {"$ref": "#/components/schemas/WorkflowEventPage"}},
                    SSE: {"schema": EVENT},
                },
            },
            **problems(400, 401, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def events(
        workflow_id: str,
        request: Request,
        caller: Caller,
        follow: Annotated[bool, Query(description="Stream new events until the end.")] = False,
        after: Annotated[
            int, Query(ge=0, le=MAX_SEQ, description="Only events after this seq.")
        ] = 0,
    ) -> Response:
        view = await visible_view(gw, caller, workflow_id)
        wf = view.workflow_id
        resume = request.headers.get("last-event-id", "")
        if resume.isdigit() and int(resume) <= MAX_SEQ:  # a stream sequence, else ignored
            after = int(resume)
        if follow or SSE in request.headers.get("accept", ""):
            return StreamingResponse(
                _follow(gw, wf, after, view.state), media_type=SSE,
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )  # fmt: skip
        async with WorkflowEventReader.open(gw.svc.js, wf, after) as reader:
            page = WorkflowEventPage(workflow_id=wf, state=view.state, events=await reader.stored())
        return Response(msgspec.json.encode(page), media_type=JSON)

    return api


async def _follow(gw: Gateway, workflow_id: str, after: int, state: str) -> AsyncIterator[bytes]:
    """Events as they are stored, up to the first that ends the workflow, then ``end``.
    A quiet stream also ends once task-manager says the workflow ended and nothing is
    left to read: its ending was sent before the client resumed, or the stream's
    retention removed it."""
    async with WorkflowEventReader.open(gw.svc.js, workflow_id, after) as reader:
        checked = sent = time.monotonic()
        while True:
            entry = await reader.next(timeout=STATE_EVERY_S)
            now = time.monotonic()
            if entry is not None:
                yield sse_event("event", msgspec.json.encode(entry), entry.seq)
                sent = now
                if entry.type in ENDINGS:
                    state = ENDINGS[entry.type]
                    break
                continue
            if now - sent > KEEPALIVE_S:
                yield b": still running\n\n"
                sent = now
            if now - checked >= STATE_EVERY_S:
                checked = now
                with contextlib.suppress(Problem):  # task-manager away a moment: ask again
                    view = await current_view(gw, workflow_id)
                    if (
                        view is not None
                        and view.state in TERMINAL_WORKFLOW_STATES
                        and await reader.pending() == 0
                    ):
                        state = view.state
                        break
        yield sse_event("end", msgspec.json.encode({"state": state}))
