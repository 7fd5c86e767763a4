"""The dead-letter stream AIOP_DLQ, read newest first by sequence, and the record of
which of its messages were replayed (KV ``aiop_dlq_replays``, keyed by sequence).

Each page is read with direct lookups by sequence: a page is a few dozen messages near
the end of the stream, and no consumer has to be made and removed for it. A sequence
the stream no longer holds (retention, a purge) is passed over.
"""

import asyncio
import base64
import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from aiop.contracts.envelope import UndecodableEvent, decode_event
from aiop.contracts.events import DeadLetterRecorded, WorkflowSubmitted
from aiop.contracts.subjects import STREAM_DLQ
from aiop.contracts.triggers import EXT_EVENTS

MAX_LIMIT = 200
# The subjects a dead letter may be sent to again: an external event (task-manager's
# triggers read it again) and a submission (task-manager accepts it again). Each is
# registered as something the gateway publishes (main.py); an event of a run in progress
# is not, as sending it again would tell its services something that did not happen now.
SUBMISSIONS = WorkflowSubmitted.filter()
REPLAYABLE = (EXT_EVENTS, SUBMISSIONS)


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead letter as ``GET /v1/dead-letters`` lists it."""

    seq: int  # its sequence in AIOP_DLQ: the id to replay, the cursor to page with
    recorded_at: datetime
    stream: str  # where the message was read from, by whom, and why it was given up on
    consumer: str
    original_subject: str
    stream_seq: int
    reason: str
    deliveries: int
    project: str | None  # None: no project's, the platform's (docs/security.md)
    workflow_id: str | None
    payload: str  # the message as it was: its text, or base64 when it is not UTF-8
    payload_encoding: Literal["utf-8", "base64"]
    headers: dict[str, str]
    replayable: bool  # whether its subject is one a replay may go to
    replayed_at: datetime | None
    replayed_by: str | None


class DeadLetterPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DeadLetter]
    next: int | None  # pass as ``before`` for the next page; None: no older records


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/dead-letters/{seq}/replay``, which may be left out."""

    payload: str | None = None  # the fixed message, as UTF-8 text; None: as it was
    force: bool = False  # replay again a record replayed before


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    subject: str
    replayed_at: datetime
    msg_id: str  # the Nats-Msg-Id it was sent with


class ReplayMark(msgspec.Struct, frozen=True, kw_only=True):
    """What the replays bucket keeps of one replay: its latest."""

    replayed_at: datetime
    by: str
    subject: str
    msg_id: str
    fixed: bool  # sent with a payload given by the caller


def replayable(subject: str) -> bool:
    """Whether a replay may send to ``subject``."""
    return any(subject.startswith(p.removesuffix(">")) for p in REPLAYABLE)


def payload_text(payload: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return payload.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), "base64"


def replay_headers(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    """The original headers with a fresh ``Nats-Msg-Id``: the same id again would be
    dropped as a duplicate within the stream's window, and after it the id says nothing."""
    msg_id = f"replay-{uuid.uuid4().hex}"
    kept = {k: v for k, v in headers.items() if k.lower() != "nats-msg-id"}
    return {**kept, "Nats-Msg-Id": msg_id}, msg_id


async def last_seq(js: JetStreamContext) -> tuple[int, int]:
    """(first, last) sequence AIOP_DLQ holds."""
    state = (await js.stream_info(STREAM_DLQ)).state
    return state.first_seq, state.last_seq


async def record_at(js: JetStreamContext, seq: int) -> DeadLetterRecorded | None:
    """The record at ``seq``; None if the stream holds none there, or not one that reads
    as a DeadLetterRecorded (only services may publish there, so that is a bug)."""
    try:
        msg = await js.get_msg(STREAM_DLQ, seq)
    except nats.js.errors.NotFoundError:
        return None
    try:
        return decode_event(msg.data or b"", DeadLetterRecorded)
    except UndecodableEvent:
        return None


async def records_before(
    js: JetStreamContext, before: int, first: int, count: int
) -> list[tuple[int, DeadLetterRecorded]]:
    """The records at the ``count`` sequences below ``before`` (not below ``first``),
    newest first, read together."""
    seqs = list(range(before - 1, max(first, 1) - 1, -1))[:count]
    found = await asyncio.gather(*(record_at(js, seq) for seq in seqs))
    return [(seq, record) for seq, record in zip(seqs, found, strict=True) if record]


async def replay_mark(kv: KeyValue, seq: int) -> tuple[ReplayMark | None, int | None]:
    """The latest replay of record ``seq`` and its revision, if it was replayed."""
    try:
        entry = await kv.get(str(seq))
    except nats.js.errors.KeyNotFoundError:
        return None, None
    if entry.value is None:
        return None, None
    return msgspec.json.decode(entry.value, type=ReplayMark), entry.revision


async def mark_replayed(kv: KeyValue, seq: int, mark: ReplayMark, revision: int | None) -> bool:
    """Record the replay, unless another was recorded meanwhile (False)."""
    value = msgspec.json.encode(mark)
    try:
        if revision is None:
            await kv.create(str(seq), value)
        else:
            await kv.update(str(seq), value, last=revision)
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    return True


async def unmark(kv: KeyValue, seq: int, previous: ReplayMark | None) -> None:
    """Undo ``mark_replayed`` after the message could not be sent."""
    if previous is None:
        await kv.delete(str(seq))
    else:
        await kv.put(str(seq), msgspec.json.encode(previous))


def now() -> datetime:
    return datetime.now(UTC)
