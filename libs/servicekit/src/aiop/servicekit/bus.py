"""Publishing events with their CloudEvents headers and the current trace context.

A service publishes only the event types it declared (``Service.publishes``): the
declarations are the AsyncAPI document and the bus permissions, so an undeclared publish
is a bug that fails at once rather than a subject nobody knows about.
"""

import logging
from collections.abc import Callable, Collection

from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry import propagate

from aiop.contracts.envelope import encode_event, event_type_of
from aiop.contracts.events import DeadLetterRecorded, Event, dead_letter_id
from aiop.contracts.subjects import stream_for

log = logging.getLogger("aiop.bus")

PUBLISH_TIMEOUT_S = 5.0


class UndeclaredEvent(Exception):
    """A service published an event type it never declared."""


class EventBus:
    """Publishes AIOP events as service ``source`` on the connection ``connection()``."""

    def __init__(
        self, source: str, connection: Callable[[], Client], declared: Collection[type[Event]]
    ) -> None:
        self.source = source
        self._connection = connection  # a getter: the service connects after wiring
        self._declared = declared

    async def publish(self, event: Event, headers: dict[str, str] | None = None) -> None:
        """Publish and wait for JetStream's ack (core NATS if no stream holds the subject).

        The ``Nats-Msg-Id`` header is the event id, so a retry of a publish whose ack was
        lost is dropped by the server as a duplicate.
        """
        self._check(type(event))
        envelope = encode_event(event, self.source)
        all_headers = {**envelope.headers, **(headers or {})}
        await self._send(envelope.subject, envelope.body, all_headers)

    async def publish_encoded(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Publish an event encoded earlier (an outbox row), with its own headers."""
        kind = event_type_of(subject, headers)
        if kind is None:
            raise UndeclaredEvent(f"{self.source}: {subject} is no AIOP event")
        self._check(kind)
        await self._send(subject, body, dict(headers))

    async def send(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Publish a message that is no AIOP event (the service checked it declared the
        subject), with the current trace context."""
        await self._send(subject, body, headers)

    async def dead_letter(self, raw: Msg, reason: str) -> None:
        """Keep ``raw`` whole in AIOP_DLQ with ``reason``; one record per stream message."""
        meta = raw.metadata
        stream = meta.stream
        seq = meta.sequence.stream
        record = DeadLetterRecorded(
            event_id=dead_letter_id(stream, meta.consumer or "unknown", seq),
            stream=stream,
            consumer=meta.consumer or "unknown",
            original_subject=raw.subject,
            stream_seq=seq,
            reason=reason[:4000],
            deliveries=meta.num_delivered,
            payload=raw.data,
            headers=dict(raw.headers or {}),
        )
        log.error("dead-lettered %s seq %d from %s: %s", raw.subject, seq, record.consumer, reason)
        await self.publish(record)

    def _check(self, kind: type[Event]) -> None:
        if kind not in self._declared:
            raise UndeclaredEvent(f"{self.source} publishes {kind.TYPE} without declaring it")

    async def _send(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Straight through nats-py rather than FastStream's publisher: its middleware chain
        and extra span were a quarter of the CPU of a consume-and-publish hop
        (docs/performance.md). The consumer's span continues the trace from ``traceparent``.
        """
        propagate.inject(headers)
        nc = self._connection()
        stream = stream_for(subject)
        if stream is None:
            await nc.publish(subject, body, headers=headers)
            return
        await nc.jetstream().publish(
            subject, body, timeout=PUBLISH_TIMEOUT_S, stream=stream, headers=headers
        )
