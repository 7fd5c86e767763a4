"""The broker every service uses, and publishing events with their CloudEvents headers."""

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker, NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.aio.msg import Msg
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

from aiop.contracts.envelope import decode_event, encode_event
from aiop.contracts.events import DeadLetterRecorded, Event, dead_letter_id
from aiop.contracts.subjects import STREAM_SUBJECTS
from aiop.servicekit.consumer import attach_bus

log = logging.getLogger("aiop.bus")

E = TypeVar("E", bound=Event)
MessageHandler = Callable[[Msg | NatsMessage], Awaitable[None]]

PUBLISH_TIMEOUT = 5.0


def stream_for(subject: str) -> str | None:
    """The stream that stores ``subject``, or None for core NATS subjects."""
    for stream, patterns in STREAM_SUBJECTS.items():
        for pattern in patterns:
            if subject.startswith(pattern.removesuffix(">")):
                return stream
    return None


async def publish_raw(
    broker: NatsBroker, subject: str, body: bytes, headers: dict[str, str]
) -> None:
    """Publish on the broker's connection with the current trace context in ``headers``;
    JetStream-acked when a stream holds ``subject``, core NATS otherwise.

    Straight through nats-py rather than FastStream's publisher: its middleware chain and
    extra span were a quarter of the CPU of a consume-and-publish hop
    (docs/performance.md). The consumer's span continues the trace from ``traceparent``.
    """
    propagate.inject(headers)
    stream = stream_for(subject)
    nc = broker.connection
    if stream is None:
        await nc.publish(subject, body, headers=headers)
        return
    await nc.jetstream().publish(
        subject, body, timeout=PUBLISH_TIMEOUT, stream=stream, headers=headers
    )


class EventBus:
    """Publishes AIOP events through ``broker`` as service ``source``."""

    def __init__(self, broker: NatsBroker, source: str) -> None:
        self.broker = broker
        self.source = source

    async def publish(self, event: Event, headers: dict[str, str] | None = None) -> None:
        """Publish and wait for JetStream's ack (core NATS if no stream holds the subject).

        The ``Nats-Msg-Id`` header is the event id, so a retry of a publish whose ack was
        lost is dropped by the server as a duplicate.
        """
        envelope = encode_event(event, self.source)
        all_headers = {**envelope.headers, **(headers or {})}
        await publish_raw(self.broker, envelope.subject, envelope.body, all_headers)

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


async def _the_message(msg: NatsMessage) -> NatsMessage:
    """The decoder that hands handlers the message: they decode its body themselves."""
    return msg


def typed(as_type: type[E]) -> Callable[[Callable[[E], Awaitable[None]]], MessageHandler]:
    """A handler of ``as_type`` events as a message handler (a JetStream ``Msg`` from a
    durable consumer, or FastStream's NatsMessage from a core subscription); an
    undecodable body raises UndecodableEvent, which the delivery policy dead-letters."""

    def wrap(handler: Callable[[E], Awaitable[None]]) -> MessageHandler:
        @functools.wraps(handler)
        async def on_message(msg: Msg | NatsMessage) -> None:
            body = msg.data if isinstance(msg, Msg) else msg.body
            await handler(decode_event(body, as_type))

        return on_message

    return wrap


def make_broker(
    service: str, nats_url: str, tracer_provider: TracerProvider | None = None, **kwargs: Any
) -> tuple[NatsBroker, EventBus]:
    """A NatsBroker with tracing and AIOP's delivery policy, and its EventBus."""
    broker = NatsBroker(
        # AIOP_NATS_URL may list a cluster's nodes, comma-separated: the client then
        # reconnects to another node when the one it uses goes away.
        [url.strip() for url in nats_url.split(",") if url.strip()],
        name=service,
        serializer=MsgSpecSerializer(),
        # Handlers take the NatsMessage itself and decode with aiop.contracts: resolving a
        # `msg: NatsMessage` parameter through FastDepends hops through a worker thread
        # for every message, a tenth of a consumer's CPU (docs/performance.md).
        apply_types=False,
        decoder=_the_message,
        # FastStream logs every message received and processed at this level: at INFO that
        # formatting was a tenth of a consumer's CPU. Failures are still logged as errors.
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,  # ride out a NATS restart instead of exiting
        reconnect_time_wait=0.5,
        **kwargs,
    )
    bus = EventBus(broker, source=f"aiop/{service}")
    # Core NATS subscriptions (heartbeats, advisories) go through FastStream and are
    # traced by its middleware; durable consumers trace themselves (consumer.py).
    broker.add_middleware(NatsTelemetryMiddleware(tracer_provider=tracer_provider))
    attach_bus(broker, bus)
    return broker, bus
