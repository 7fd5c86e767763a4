"""The dead-letter safety net: JetStream advisories -> records in AIOP_DLQ.

servicekit's delivery middleware dead-letters what a handler rejects, but a handler that
crashes the whole process on every delivery never reaches it. JetStream still announces
when such a message hits ``max_deliver`` or is terminated (docs/delivery.md, "Dead letters"); the
reporter turns each announcement into the same DeadLetterRecorded, with the same event
id, so a record the consumer already wrote is dropped by JetStream as a duplicate.
"""

import logging

import msgspec
import nats.js.errors
from nats.js import JetStreamContext

from aiop.contracts.events import DeadLetterRecorded, dead_letter_id
from aiop.contracts.subjects import STREAM_DLQ, InvalidToken, check_token
from aiop.servicekit import EventBus

log = logging.getLogger("aiop.reporter.advisories")

MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
MSG_TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>"

REASONS = {
    "io.nats.jetstream.advisory.v1.max_deliver": "max deliveries reached",
    "io.nats.jetstream.advisory.v1.terminated": "terminated by consumer",
}


class Advisory(msgspec.Struct, frozen=True, kw_only=True):
    """The fields both advisories share (the server sends more; they are ignored)."""

    type: str
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0
    reason: str = ""  # set on terminations by newer servers


async def record_advisory(js: JetStreamContext, bus: EventBus, advisory: Advisory) -> bool:
    """Record the message an advisory is about in AIOP_DLQ; False if it is skipped."""
    if advisory.stream == STREAM_DLQ:
        return False  # a dead letter that cannot be processed must not loop back in
    try:
        check_token(advisory.stream, "stream")
        check_token(advisory.consumer, "consumer")
    except InvalidToken:
        log.error("advisory for an unroutable stream/consumer: %r", advisory)
        return False
    reason = REASONS.get(advisory.type, advisory.type)
    if advisory.reason:
        reason = f"{reason}: {advisory.reason}"
    subject, payload, headers = "", b"", {}
    try:
        original = await js.get_msg(advisory.stream, advisory.stream_seq)
        subject = original.subject or ""
        payload = original.data or b""
        headers = {k: v for k, v in (original.headers or {}).items() if isinstance(v, str)}
    except nats.js.errors.NotFoundError:
        # Gone already (retention): still record that it was lost, and where.
        reason = f"{reason}; original message no longer in the stream"
    record = DeadLetterRecorded(
        event_id=dead_letter_id(advisory.stream, advisory.consumer, advisory.stream_seq),
        stream=advisory.stream,
        consumer=advisory.consumer,
        original_subject=subject,
        stream_seq=advisory.stream_seq,
        reason=reason,
        deliveries=advisory.deliveries,
        payload=payload,
        headers=headers,
    )
    log.error(
        "dead-lettered %s seq %d from %s (advisory): %s",
        advisory.stream, advisory.stream_seq, advisory.consumer, reason,
    )  # fmt: skip
    await bus.publish(record)
    return True
