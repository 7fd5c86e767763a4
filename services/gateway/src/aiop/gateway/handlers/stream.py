"""GET /v1/stream: a live tail of the event streams as Server-Sent Events, filtered by
subject patterns as ``aiop tail`` is, and to what the caller may see (``audience``):
an event of a workflow outside its projects is never sent; an executor's circuit
changes concern everyone; a dead letter is shown as ``GET /v1/dead-letters`` shows it."""

import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from nats.aio.msg import Msg
from starlette.responses import Response, StreamingResponse

from aiop.contracts.envelope import UndecodableEvent, decode_event, event_type_of
from aiop.contracts.events import (
    DeadLetterRecorded,
    Event,
    ExecutorCircuitChanged,
    WorkflowAccepted,
    WorkflowSubmitted,
)
from aiop.contracts.patterns import BadPattern, check_pattern, matches, start_time, streams_for
from aiop.contracts.subjects import STREAM_DLQ, workflow_id_of
from aiop.contracts.summaries import summary
from aiop.gateway.access import visible_view
from aiop.gateway.adapters.event_tail import (
    DEFAULT_PATTERNS,
    TAILED,
    Closed,
    EventTail,
    TailEvent,
    TailPage,
    positions_from,
)
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.audience import claim_of, owner_of, sees
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.handlers.logs import JSON, KEEPALIVE_S, SSE, sse_event
from aiop.gateway.openapi import BEARER, REF, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit import Service

log = logging.getLogger("aiop.gateway")
MAX_PATTERNS = 32  # each is matched against every stream subject, pairwise
PAGE_QUIET_S = 0.5  # a JSON page ends at the first pause this long: caught up
CIRCUITS = "aiop.executor.circuit."  # an executor's, not a project's: shown to everyone
EVENT = {
    "type": "object",
    "description": "one SSE event per stream message the caller may see (event: its type,"
    " id: where the tail is, to send back as Last-Event-ID, data: a TailEvent as JSON);"
    ' with idle_s, one `end` event (data: {"reason": "idle"}) after that long quiet;'
    " a comment line every 15 s otherwise",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string"},
        "data": {"$ref": REF.format(name="TailEvent")},
    },
    "required": ["event", "data"],
}


def follow_streams(svc: Service) -> None:
    """What the tail needs of the bus besides the workflow events and output the gateway
    follows already: each stream's end when a tail opens, and the dead letters and
    circuit changes followed."""
    svc.reads(*(stream for stream in TAILED if stream != STREAM_DLQ))  # AIOP_DLQ: dead_letters
    svc.follows(DeadLetterRecorded, ExecutorCircuitChanged)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/stream")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: {
                **json_reply("TailPage", "The events as they are stored, as an event stream;"
                             " with Accept: application/json, those stored so far as one page"),
                "content": {
                    JSON: {"schema": {"$ref": REF.format(name="TailPage")}},
                    SSE: {"schema": EVENT},
                },
            },
            **problems(400, 401, 403, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def stream(
        request: Request,
        caller: Caller,
        subject: Annotated[
            list[str] | None,
            Query(description="Subject patterns, as `aiop tail` takes them; default: "
                  + ", ".join(DEFAULT_PATTERNS)),
        ] = None,
        workflow: Annotated[str | None, Query(description="Only this workflow's events.")] = None,
        since: Annotated[
            str | None, Query(description="Replay from then: 30s, 5m, 2h, 1d ago, or ISO 8601.")
        ] = None,
        idle_s: Annotated[
            float | None, Query(gt=0, le=3600, description="End after this long without an event.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="A JSON page's most events.")] = 100,
    ) -> Response:  # fmt: skip
        patterns = _patterns(subject or list(DEFAULT_PATTERNS))
        if workflow is not None:
            view = await visible_view(gw, caller, workflow)  # 404 unless the caller's
            gw.owners.learn(view.workflow_id, view.project)
        filters = streams_for(patterns, workflow, TAILED)
        if not filters:  # dead letters and circuit changes name no workflow
            raise Problem(400, f"no event of workflow {workflow} matches {', '.join(patterns)}",
                          kind="bad-pattern")  # fmt: skip
        start = _since(since)
        after = positions_from(request.headers.get("last-event-id", ""), list(filters))
        accept = request.headers.get("accept", "")
        if JSON in accept and SSE not in accept:  # a page, for a caller that cannot stream
            page = await _page(gw, caller, filters, patterns, workflow, start, after, limit)
            return Response(msgspec.json.encode(page), media_type=JSON)
        give_back = gw.tails.take(caller.sub)
        if give_back is None:
            raise Problem(429, f"{caller.sub} has {gw.tails.most} live tails open already,"
                          " the most one caller may: close one first", kind="too-many-tails")  # fmt: skip
        body = _tail(gw, caller, filters, patterns, workflow, start, after, idle_s, give_back)
        weakref.finalize(body, give_back)  # an answer dropped before it began streaming
        return StreamingResponse(
            body, media_type=SSE, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )  # fmt: skip

    return api


def _patterns(given: list[str]) -> list[str]:
    if len(given) > MAX_PATTERNS:
        raise Problem(400, f"at most {MAX_PATTERNS} subject patterns", kind="bad-pattern")
    for pattern in given:
        try:
            check_pattern(pattern)
        except BadPattern as exc:
            raise Problem(400, str(exc), kind="bad-pattern") from None
        if not streams_for([pattern], None, TAILED):
            raise Problem(400, f"{pattern!r} matches no subject of the streams the tail reads"
                          f" ({', '.join(TAILED)}): workflow, step, output, executor circuit"
                          " and dead-letter events", kind="bad-pattern")  # fmt: skip
    return given


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return start_time(value)
    except ValueError:
        raise Problem(400, f"since {value!r}: use 30s, 5m, 2h, 1d or an ISO 8601 time",
                      kind="bad-since") from None  # fmt: skip


async def _tail(
    gw: Gateway,
    caller: Claims,
    filters: dict[str, list[str]],
    patterns: list[str],
    workflow: str | None,
    since: datetime | None,
    after: dict[str, int],
    idle_s: float | None,
    give_back: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The events the caller may see, with a comment line when quiet, until the client
    goes (the response is cancelled), the gateway stops, or ``idle_s`` passes quiet;
    then the caller's tail slot is given back."""
    try:
        async with EventTail.open(gw.svc.js, filters, since, after) as tail:
            sent = quiet_since = time.monotonic()
            while True:
                try:
                    msg = await tail.next(timeout=min(KEEPALIVE_S, idle_s or KEEPALIVE_S))
                except Closed as exc:
                    log.info("tail closed: %s", exc)
                    return
                now = time.monotonic()
                data = None if msg is None else await _shown(gw, caller, msg, patterns, workflow)
                if msg is not None and data is not None:
                    yield sse_event(data.type, msgspec.json.encode(data), tail.event_id())
                    sent = quiet_since = now
                elif idle_s is not None and now - quiet_since >= idle_s:
                    yield sse_event("end", b'{"reason":"idle"}', tail.event_id())
                    return
                elif now - sent >= KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    sent = now
    finally:
        give_back()


async def _page(
    gw: Gateway,
    caller: Claims,
    filters: dict[str, list[str]],
    patterns: list[str],
    workflow: str | None,
    since: datetime | None,
    after: dict[str, int],
    limit: int,
) -> TailPage:
    """What the tail would send, up to ``limit`` events or the first quiet moment."""
    events: list[TailEvent] = []
    async with EventTail.open(gw.svc.js, filters, since, after) as tail:
        while len(events) < limit:
            try:
                msg = await tail.next(timeout=PAGE_QUIET_S)
            except Closed:
                break
            if msg is None:
                break
            if (data := await _shown(gw, caller, msg, patterns, workflow)) is not None:
                events.append(data)
        return TailPage(events=events, last_event_id=tail.event_id())


async def _shown(
    gw: Gateway, caller: Claims, msg: Msg, patterns: list[str], workflow: str | None
) -> TailEvent | None:
    """The message as the tail sends it, if it matches and the caller may see it."""
    subject = msg.subject
    wf = workflow_id_of(subject)
    if not matches(patterns, subject) or (workflow is not None and wf != workflow):
        return None  # the server's filters may be wider than the patterns
    headers = dict(msg.headers or {})
    event, text = _decoded(subject, msg.data, headers)
    if isinstance(event, WorkflowSubmitted | WorkflowAccepted):
        gw.owners.learn(event.workflow_id, event.spec.project)  # no need to ask task-manager
    try:
        if not await _sees(gw, caller, subject, msg.data, headers, event):
            return None
    except Problem as exc:  # task-manager away: not sent, as what cannot be checked
        log.warning("tail: cannot tell whose %s is: %s", subject, exc.detail)
        return None
    body: Any
    try:
        body = msgspec.json.decode(msg.data)
    except msgspec.DecodeError:
        body = msg.data.decode(errors="replace")
    return TailEvent(
        stream=msg.metadata.stream, seq=msg.metadata.sequence.stream, subject=subject,
        type=headers.get("ce-type") or ".".join(subject.split(".")[:4]),
        time=event.occurred_at if event is not None else _time(headers),
        workflow_id=wf, summary=text, event=body,
    )  # fmt: skip


def _decoded(subject: str, data: bytes, headers: dict[str, str]) -> tuple[Event | None, str]:
    kind = event_type_of(subject, headers)
    if kind is None:
        return None, ""
    try:
        event = decode_event(data, kind)
    except UndecodableEvent as exc:
        return None, f"(undecodable: {exc})"
    return event, summary(event)


async def _sees(
    gw: Gateway,
    caller: Claims,
    subject: str,
    data: bytes,
    headers: dict[str, str],
    event: Event | None,
) -> bool:
    if subject.startswith(CIRCUITS):
        return True
    if isinstance(event, DeadLetterRecorded):  # by its message's owner, as the list shows it
        claim = claim_of(event.original_subject, event.payload, event.headers)
        return sees(caller, await owner_of(gw, claim))
    claim = claim_of(subject, data, headers)
    project = await owner_of(gw, claim)
    if claim.workflow_id is not None and project is None:
        return False  # a workflow no one can place: never sent to someone it is not for
    return sees(caller, project)


def _time(headers: dict[str, str]) -> datetime:
    try:
        return datetime.fromisoformat(headers["ce-time"])
    except (KeyError, ValueError):
        return datetime.now(UTC)
