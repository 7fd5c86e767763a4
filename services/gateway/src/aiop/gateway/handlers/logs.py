"""GET /v1/workflows/{id}/logs: the steps' output, whole as JSON, or followed live as
Server-Sent Events until the workflow has ended and every line of it was sent."""

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.gateway.access import current_view, visible_view
from aiop.gateway.adapters.logs import LogPage, LogReader
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
SSE = "text/event-stream"
STATE_EVERY_S = 1.0  # how often a follower checks whether the workflow has ended
KEEPALIVE_S = 15.0  # a comment line, so proxies keep an idle stream open
EVENT = {
    "type": "object",
    "description": "`output` events (id: the entry's seq, data: a LogEntry as JSON) until the"
    ' workflow has ended, then one `end` event (data: {"state": ...})',
    "properties": {
        "event": {"enum": ["output", "end"]},
        "id": {"type": "string"},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}


MAX_SEQ = 2**63 - 1  # a stream sequence: JetStream's are unsigned 64-bit, kept signed here


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "/{workflow_id}/logs",
        responses={
            200: {
                **json_reply("LogPage", "The output stored so far; with follow, or"
                             " Accept: text/event-stream, an event stream instead"),
                "content": {
                    JSON: {"schema": {"$ref": "#/components/schemas/LogPage"}},
                    SSE: {"schema": EVENT},
                },
            },
            **problems(400, 401, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def logs(
        workflow_id: str,
        request: Request,
        caller: Caller,
        step: Annotated[str | None, Query(description="Only this step's output.")] = None,
        follow: Annotated[bool, Query(description="Stream new output until the end.")] = False,
        after: Annotated[
            int, Query(ge=0, le=MAX_SEQ, description="Only entries after this seq.")
        ] = 0,
    ) -> Response:
        view = await visible_view(gw, caller, workflow_id)
        wf = view.workflow_id
        if step is not None and view.steps and step not in {s.name for s in view.steps}:
            raise Problem(404, f"workflow {wf} has no step {step!r}", kind="not-found")
        resume = request.headers.get("last-event-id", "")
        if resume.isdigit() and int(resume) <= MAX_SEQ:  # a stream sequence, else ignored
            after = int(resume)
        if follow or SSE in request.headers.get("accept", ""):
            return StreamingResponse(
                _follow(gw, wf, step, after, view.state), media_type=SSE,
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )  # fmt: skip
        async with LogReader.open(gw.svc.js, wf, step, after) as reader:
            page = LogPage(workflow_id=wf, state=view.state, entries=await reader.stored())
        return Response(msgspec.json.encode(page), media_type=JSON)

    return api


async def _follow(
    gw: Gateway, workflow_id: str, step: str | None, after: int, state: str
) -> AsyncIterator[bytes]:
    """Entries as they are stored; once the workflow has ended (its executor stores all
    output before its end), what is left, then ``end``."""
    async with LogReader.open(gw.svc.js, workflow_id, step, after) as reader:
        checked = sent = time.monotonic()
        while state not in TERMINAL_WORKFLOW_STATES:
            entry = await reader.next(timeout=STATE_EVERY_S)
            now = time.monotonic()
            if entry is not None:
                yield sse_event("output", msgspec.json.encode(entry), entry.seq)
                sent = now
            elif now - sent > KEEPALIVE_S:
                yield b": still running\n\n"
                sent = now
            if now - checked >= STATE_EVERY_S:
                with contextlib.suppress(Problem):  # task-manager away a moment: ask again
                    view = await current_view(gw, workflow_id)
                    state = view.state if view is not None else state
                checked = now
        for entry in await reader.stored():
            yield sse_event("output", msgspec.json.encode(entry), entry.seq)
        yield sse_event("end", msgspec.json.encode({"state": state}))


def sse_event(kind: str, data: bytes, event_id: int | str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` is JSON, or any text (each of its lines is a
    ``data:`` line, which the browser joins again). Every SSE route writes these."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    lines = b"".join(b"data: " + line + b"\n" for line in data.splitlines() or [b""])
    return f"{head}event: {kind}\n".encode() + lines + b"\n"
