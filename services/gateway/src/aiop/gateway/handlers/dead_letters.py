"""GET /v1/dead-letters: the dead-letter stream, newest first, each record with its
reason; POST /v1/dead-letters/{seq}/replay: a record's message sent again to its
original subject, as it was or fixed, once (again only with ``force``).

A caller sees the records of its projects, and the platform's when it holds the
``default`` project (``audience``); any other record is not even named (404).
"""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from aiop.contracts.events import DeadLetterRecorded, WorkflowSubmitted
from aiop.contracts.subjects import KV_DLQ_REPLAYS, STREAM_DLQ
from aiop.gateway.adapters import dead_letters as dlq
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.audience import claim_of, owner_of, sees
from aiop.gateway.context import Gateway, authenticated, read_body
from aiop.gateway.handlers.logs import MAX_SEQ
from aiop.gateway.openapi import BEARER, REF, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit import Service, open_bucket

JSON = "application/json"
# A caller who sees few of the records still gets an answer soon: a page stops after
# this many records looked at, and its ``next`` goes on from there.
SCAN_PER_PAGE = 1000
REPLAY_BODY = {
    "requestBody": {
        "required": False,
        "content": {JSON: {"schema": {"$ref": REF.format(name="ReplayRequest")}}},
    }
}
_replay_request = msgspec.json.Decoder(dlq.ReplayRequest)


def serve_dead_letters(svc: Service, gw: Gateway, replicas: int) -> None:
    """What the routes need of the bus: AIOP_DLQ read by sequence, the replays bucket,
    and the subjects a replay sends to (``ext.>`` is POST /v1/events' already)."""
    svc.reads(STREAM_DLQ)
    svc.uses_bucket(KV_DLQ_REPLAYS)
    svc.publishes_to(dlq.SUBMISSIONS, WorkflowSubmitted)

    async def open_replays() -> None:
        gw.dlq_replays = await open_bucket(svc.js, KV_DLQ_REPLAYS, replicas=replicas)

    svc.on_start(open_replays)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/dead-letters")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: json_reply("DeadLetterPage", "The records the caller sees, newest first"),
            **problems(400, 401, 403, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_dead_letters(
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=dlq.MAX_LIMIT)] = 50,
        before: Annotated[
            int | None, Query(ge=1, le=MAX_SEQ, description="Only records older than this seq.")
        ] = None,
    ) -> Response:
        js = gw.svc.js
        first, last = await _bounds(gw)
        cursor = min(before or last + 1, last + 1)  # every record below it is still to look at
        items: list[dlq.DeadLetter] = []
        scanned = 0
        while cursor > first and len(items) < limit and scanned < SCAN_PER_PAGE:
            count = min(limit - len(items), SCAN_PER_PAGE - scanned)  # never past the limit
            for seq, record in await dlq.records_before(js, cursor, first, count):
                if (item := await _visible(gw, caller, seq, record)) is not None:
                    items.append(item)
            cursor, scanned = max(first, cursor - count), scanned + count
        page = dlq.DeadLetterPage(items=items, next=cursor if cursor > first else None)
        return Response(msgspec.json.encode(page), media_type=JSON)

    @api.post(
        "/{seq}/replay",
        status_code=202,
        responses={
            202: json_reply("Replayed", "Sent again to its original subject"),
            **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**REPLAY_BODY, **BEARER},
    )
    async def replay_dead_letter(
        request: Request,
        caller: Caller,
        seq: Annotated[int, Path(ge=1, le=MAX_SEQ, description="The record's seq in AIOP_DLQ.")],
    ) -> Response:
        body = await read_body(request, gw.max_body_bytes)
        try:
            asked = _replay_request.decode(body) if body.strip() else dlq.ReplayRequest()
        except msgspec.ValidationError as exc:
            raise Problem(422, str(exc), kind="invalid") from None
        except msgspec.DecodeError as exc:
            raise Problem(400, f"the body is not JSON: {exc}", kind="malformed") from None
        record = await dlq.record_at(gw.svc.js, seq)
        item = None if record is None else await _visible(gw, caller, seq, record)
        if record is None or item is None:
            raise Problem(404, f"no dead letter {seq}", kind="not-found")
        if not item.replayable:
            raise Problem(409, f"{record.original_subject} is not a subject a replay may go to"
                          f" (only {', '.join(dlq.REPLAYABLE)})", kind="not-replayable")  # fmt: skip
        payload = record.payload if asked.payload is None else asked.payload.encode()
        if asked.payload is not None:
            await _same_owner(gw, caller, record, payload, item.project)
        replayed = await _replay(gw, caller, seq, record, payload, asked)
        return Response(msgspec.json.encode(replayed), 202, media_type=JSON)

    return api


async def _bounds(gw: Gateway) -> tuple[int, int]:
    try:
        return await dlq.last_seq(gw.svc.js)
    except Exception as exc:
        raise Problem(503, f"cannot read the dead letters: {type(exc).__name__}",
                      kind="unavailable") from exc  # fmt: skip


async def _visible(
    gw: Gateway, caller: Claims, seq: int, record: DeadLetterRecorded
) -> dlq.DeadLetter | None:
    """The record as listed, if the caller sees it."""
    claim = claim_of(record.original_subject, record.payload, record.headers)
    project = await owner_of(gw, claim)
    if not sees(caller, project):
        return None
    mark = None
    if gw.dlq_replays is not None:
        mark, _ = await dlq.replay_mark(gw.dlq_replays, seq)
    text, encoding = dlq.payload_text(record.payload)
    return dlq.DeadLetter(
        seq=seq, recorded_at=record.occurred_at, stream=record.stream,
        consumer=record.consumer, original_subject=record.original_subject,
        stream_seq=record.stream_seq, reason=record.reason, deliveries=record.deliveries,
        project=project, workflow_id=claim.workflow_id, payload=text,
        payload_encoding=encoding, headers=record.headers,
        replayable=dlq.replayable(record.original_subject),
        replayed_at=mark.replayed_at if mark else None, replayed_by=mark.by if mark else None,
    )  # fmt: skip


async def _same_owner(
    gw: Gateway, caller: Claims, record: DeadLetterRecorded, payload: bytes, project: str | None
) -> None:
    """A fixed message stays the record's project's: fixing it must not move it into
    another project (an external event naming another, a submission of another). A
    platform record may become a message of a project the caller holds."""
    claim = claim_of(record.original_subject, payload, record.headers)
    for named in {claim.project, await owner_of(gw, claim)}:
        moved = project is not None and named not in (None, project)
        if moved or not sees(caller, named):
            raise Problem(422, f"the fixed message belongs to {named or 'the platform'}, the"
                          f" record to {project or 'the platform'}", kind="bad-payload")  # fmt: skip


async def _replay(
    gw: Gateway,
    caller: Claims,
    seq: int,
    record: DeadLetterRecorded,
    payload: bytes,
    asked: dlq.ReplayRequest,
) -> dlq.Replayed:
    """Mark the record replayed, then send: two replays at once, one is refused; a send
    that fails is unmarked so the record can be replayed again."""
    kv = gw.dlq_replays
    if kv is None:
        raise Problem(503, "the gateway is starting", kind="unavailable")
    previous, revision = await dlq.replay_mark(kv, seq)
    if previous is not None and not asked.force:
        raise Problem(409, f"dead letter {seq} was replayed at {previous.replayed_at.isoformat()}"
                      ' by ' + previous.by + '; send {"force": true} to replay it again',
                      kind="replayed")  # fmt: skip
    headers, msg_id = dlq.replay_headers(record.headers)
    mark = dlq.ReplayMark(replayed_at=dlq.now(), by=caller.sub, subject=record.original_subject,
                          msg_id=msg_id, fixed=payload != record.payload)  # fmt: skip
    if not await dlq.mark_replayed(kv, seq, mark, revision):
        raise Problem(409, f"dead letter {seq} is being replayed", kind="replayed")
    try:
        await gw.svc.send(record.original_subject, payload, headers)
    except Exception as exc:
        await dlq.unmark(kv, seq, previous)
        raise Problem(503, f"cannot send the message: {type(exc).__name__}",
                      kind="unavailable") from exc  # fmt: skip
    return dlq.Replayed(seq=seq, subject=record.original_subject, replayed_at=mark.replayed_at,
                        msg_id=msg_id)  # fmt: skip
