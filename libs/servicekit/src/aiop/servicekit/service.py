"""One AIOP service on the bus: everything it consumes, answers, listens to and publishes,
registered on one object that runs it.

    svc = Service("distributor", settings)
    svc.publishes(WorkflowRequested, WorkflowQueued)
    svc.consume(WorkflowAccepted, on.accepted, durable="distributor-accepted", policy=POLICY)
    svc.listen(ExecutorHeartbeat, on.heartbeat)
    svc.on_start(distributor.start)
    await svc.run()

Building a service does no I/O, so its registrations can be read without running it
(the AsyncAPI document is generated from them). At start it connects, sets up tracing
and the streams, runs its ``on_start`` hooks, its listeners and consumers, and only then
answers pings. It stops in the reverse order, draining its consumers (ADR 0008).

FastStream holds the connection with its reconnect policy, the lifecycle (hooks, signal
handling) and the core NATS listeners with their telemetry; durable consumers run on
servicekit's own pull loop (ADR 0006) and endpoints on nats.micro.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.security import BaseSecurity
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.micro.service import Service as MicroService

from aiop.contracts.endpoints import Endpoint
from aiop.contracts.events import DeadLetterRecorded, Event
from aiop.contracts.subjects import stream_for
from aiop.servicekit import rpc
from aiop.servicekit.bus import EventBus, UndeclaredEvent
from aiop.servicekit.consumer import (
    BatchConsumer,
    Delivery,
    EachConsumer,
    MessageConsumer,
    Outcomes,
    PullConsumer,
    Reading,
)
from aiop.servicekit.delivery import DeliveryPolicy
from aiop.servicekit.permissions import inbox_prefix
from aiop.servicekit.settings import ServiceSettings
from aiop.servicekit.streams import ensure_streams
from aiop.servicekit.telemetry import setup_tracing
from aiop.servicekit.traffic import Action, Traffic

log = logging.getLogger("aiop.service")

E = TypeVar("E", bound=Event)
S = TypeVar("S", bound=msgspec.Struct)
Hook = Callable[[], Awaitable[None]]
DEFAULT_POLICY = DeliveryPolicy()


class Service:
    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.traffic: list[Traffic] = []
        self._publishes: set[type[Event]] = set()
        self._asks: set[str] = set()
        self._sends: set[str] = set()  # subject filters of publishes_to
        self._consumers: list[PullConsumer] = []
        self._answers: list[tuple[Endpoint[Any, Any], rpc.Answer]] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._micro: MicroService | None = None
        self.broker = NatsBroker(
            # AIOP_NATS_URL may list a cluster's nodes, comma-separated: the client then
            # reconnects to another node when the one it uses goes away.
            [url.strip() for url in settings.nats_url.split(",") if url.strip()],
            name=name,
            # Listeners take the message itself and decode it with msgspec: resolving
            # handler parameters through FastDepends hops through a worker thread for
            # every message (ADR 0005).
            apply_types=False,
            decoder=_the_message,
            # FastStream logs every message received and processed at this level: at INFO
            # that formatting was a tenth of a consumer's CPU. Errors are still logged.
            log_level=logging.DEBUG,
            max_reconnect_attempts=-1,  # ride out a NATS restart instead of exiting
            reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py takes seconds as float
            middlewares=[NatsTelemetryMiddleware()],
            # Replies to this service arrive where only it may subscribe.
            inbox_prefix=inbox_prefix(name),
            nkeys_seed=str(settings.nats_seed_file) if settings.nats_seed_file else None,
            security=_security(settings.nats_ca_file),
        )
        self.bus = EventBus(f"aiop/{name}", lambda: self.broker.connection, self._publishes)
        self.app = FastStream(self.broker, logger=log)
        self.app.on_startup(self._prepare)
        self.app.after_startup(self._open)
        self.app.on_shutdown(self._close)

    # -- what the service does ---------------------------------------------------------

    def publishes(self, *events: type[Event]) -> None:
        for event in events:
            if event not in self._publishes:
                self._publishes.add(event)
                self._record(Action.PUBLISH, event.TYPE, event)

    def consume(
        self,
        events: type[E] | Sequence[type[E]],
        handler: Callable[[E], Awaitable[None]],
        *,
        durable: str,
        policy: DeliveryPolicy = DEFAULT_POLICY,
        workers: int = 1,
        tokens: dict[str, str] | None = None,
    ) -> None:
        """A durable consumer handing each event to ``handler``, ``workers`` at a time;
        ``tokens`` fix leading routing tokens (an executor's pool)."""
        reading = self._reading(events, durable, policy, tokens)
        self._consumers.append(EachConsumer(reading, self.bus.dead_letter, handler, workers))

    def consume_batch(
        self,
        events: type[E] | Sequence[type[E]],
        handler: Callable[[list[Delivery[E]]], Awaitable[Outcomes]],
        *,
        durable: str,
        policy: DeliveryPolicy = DEFAULT_POLICY,
        batch_size: int = 64,
        linger_s: float = 0.0,
    ) -> None:
        """A durable consumer handing each fetch whole to ``handler``, in stream order;
        it returns one outcome per delivery (``consumer.BatchConsumer``)."""
        reading = self._reading(events, durable, policy, None)
        self._consumers.append(
            BatchConsumer(reading, self.bus.dead_letter, handler, batch_size, linger_s)
        )

    def consume_messages(
        self,
        subject: str,
        kind: type[S],
        read: Callable[[Msg], S],
        handler: Callable[[S], Awaitable[None]],
        *,
        durable: str,
        policy: DeliveryPolicy = DEFAULT_POLICY,
        workers: int = 1,
    ) -> None:
        """A durable consumer of messages that are no AIOP event (CloudEvents that
        systems outside publish under ``ext.>``): ``read`` makes each a ``kind``, or
        raises Permanent to dead-letter it."""
        stream = stream_for(subject)
        if stream is None:
            raise ValueError(f"{durable}: no stream stores {subject}")
        self._record(Action.CONSUME, subject, kind, durable=durable)
        self.publishes(DeadLetterRecorded)
        reading = Reading(durable, stream, (), (subject,), policy)
        self._consumers.append(
            MessageConsumer(reading, self.bus.dead_letter, read, handler, workers)
        )

    def publishes_to(self, subject: str, kind: type[msgspec.Struct]) -> None:
        """Messages that are no AIOP event it publishes under ``subject`` (a filter such
        as ``ext.>``) with ``send``: its bus permissions cover that filter."""
        self._sends.add(subject)
        self._record(Action.PUBLISH, subject, kind)

    async def send(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Publish ``body`` on ``subject`` (declared with ``publishes_to``) and wait for
        JetStream's ack; ``Nats-Msg-Id`` in ``headers`` makes a repeat a no-op."""
        if not any(_within(subject, declared) for declared in self._sends):
            raise UndeclaredEvent(f"{self.name} sends on {subject} without declaring it")
        await self.bus.send(subject, body, dict(headers))

    def listen(
        self,
        kind: type[S],
        handler: Callable[[S], Awaitable[None]],
        *,
        subject: str | None = None,
        queue: str | None = None,
    ) -> None:
        """A core NATS subscription: for what is worthless once stale (heartbeats) or not
        stored (server advisories). ``queue`` shares the messages among replicas."""
        if subject is None:
            if not issubclass(kind, Event):
                raise TypeError(f"listening to {kind.__name__} needs a subject")
            subject = kind.filter()
        decode = msgspec.json.Decoder(kind).decode

        async def on_message(msg: NatsMessage) -> None:
            try:
                value = decode(msg.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Nothing to redeliver or dead-letter on core NATS: say so and go on.
                log.warning("%s: undecodable %s on %s: %s", self.name, kind.__name__,
                            msg.raw_message.subject, exc)  # fmt: skip
                return
            await handler(value)

        # Never an answer: a JetStream publish on a subject listened to here carries a
        # reply inbox for the stream's ack, and an empty reply racing it breaks the publish.
        self.broker.subscriber(subject, queue=queue or "", no_reply=True)(on_message)
        self._record(Action.LISTEN, subject, kind, queue=queue)

    def answer(self, endpoint: Endpoint[Any, Any], handler: rpc.Answer) -> None:
        self._answers.append((endpoint, handler))
        self._record(Action.ANSWER, endpoint.subject, endpoint.request, endpoint=endpoint)

    def asks(self, *endpoints: Endpoint[Any, Any]) -> None:
        for endpoint in endpoints:
            self._asks.add(endpoint.subject)
            self._record(Action.ASK, endpoint.subject, endpoint.request, endpoint=endpoint)

    async def ask(
        self, endpoint: Endpoint[Any, Any], payload: Any, timeout_s: float = 2.0
    ) -> bytes:
        """The reply body; ``rpc.QueryFailed`` for an error reply or no answer."""
        if endpoint.subject not in self._asks:
            raise UndeclaredEvent(f"{self.name} asks {endpoint.subject} without declaring it")
        return await rpc.request(self.nc, endpoint.subject, payload, timeout_s)

    def uses_bucket(self, *buckets: str) -> None:
        """Key-value buckets the service opens (creating them if missing), reads, writes
        and watches: its bus permissions cover those buckets and no others."""
        for bucket in buckets:
            self._record(Action.BUCKET, bucket, None)

    def uses_object_store(self, *buckets: str) -> None:
        """Object stores the service opens (creating them if missing), reads and writes."""
        for bucket in buckets:
            self._record(Action.OBJECTS, bucket, None)

    def reads(self, *streams: str) -> None:
        """Streams whose messages the service looks up by sequence, outside any consumer."""
        for stream in streams:
            self._record(Action.READ, stream, None)

    def purges(self, *streams: str) -> None:
        """Streams it removes messages from, by subject (the logs of runs it removed)."""
        for stream in streams:
            self._record(Action.PURGE, stream, None)

    def follows(self, *events: type[Event]) -> None:
        """Events it reads from their stream through ordered consumers of its own, each
        filtered to what one client asked for (a workflow's output, followed live)."""
        for event in events:
            self._record(Action.FOLLOW, event.filter(), event)

    def follows_subject(self, subject: str, kind: type[msgspec.Struct]) -> None:
        """Like ``follows``, for messages that are no AIOP event (an agent's reports)."""
        self._record(Action.FOLLOW, subject, kind)

    def leases(self, subject: str, kind: type[msgspec.Struct]) -> None:
        """Messages under ``subject`` that it hands out through durable pull consumers it
        creates as it goes, one per narrower filter (agents' work)."""
        self._record(Action.LEASE, subject, kind)

    def on_start(self, hook: Hook) -> None:
        """Run ``hook`` at start, after the streams exist and before any listener or
        consumer: open stores here."""
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run ``hook`` at stop, after the consumers drained; hooks run in reverse order."""
        self._on_stop.append(hook)

    # -- running it ----------------------------------------------------------------------

    @property
    def consumers(self) -> tuple[PullConsumer, ...]:
        return tuple(self._consumers)

    @property
    def nc(self) -> Client:
        return self.broker.connection

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

    async def run(self) -> None:
        """Start, serve until SIGINT, SIGTERM or ``exit()``, then stop."""
        configure_logging(self.settings.log_level, self.name)  # before FastStream's first line
        await self.app.run()

    def exit(self) -> None:
        self.app.exit()

    async def start(self) -> None:
        """Start without waiting for a signal (the caller stops it)."""
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()

    async def _prepare(self) -> None:
        configure_logging(self.settings.log_level, self.name)
        setup_tracing(self.name, self.settings.trace_dir)
        await self.broker.connect()
        if self.settings.create_streams:
            await ensure_streams(self.js, self.settings.stream_replicas)
        for hook in self._on_start:
            await hook()

    async def _open(self) -> None:
        for consumer in self._consumers:
            await consumer.start(self.js)
        # Last: answering a ping means every part of the service runs.
        self._micro = await rpc.serve(self.nc, self.name, self._answers)

    async def _close(self) -> None:
        if self._micro is not None:
            await self._micro.stop()
        grace = self.settings.stop_grace_s
        await asyncio.gather(*(c.stop(grace) for c in self._consumers))
        for hook in reversed(self._on_stop):
            await hook()

    # -- helpers -------------------------------------------------------------------------

    def _reading(
        self,
        events: type[E] | Sequence[type[E]],
        durable: str,
        policy: DeliveryPolicy,
        tokens: dict[str, str] | None,
    ) -> Reading:
        kinds = (events,) if isinstance(events, type) else tuple(events)
        subjects = tuple(kind.filter(**(tokens or {})) for kind in kinds)
        streams = {stream_for(kind.TYPE) for kind in kinds}
        if len(streams) != 1 or None in streams:
            raise ValueError(f"{durable}: {subjects} are not all stored in one stream")
        for kind, subject in zip(kinds, subjects, strict=True):
            self._record(Action.CONSUME, subject, kind, durable=durable)
        self.publishes(DeadLetterRecorded)  # what the delivery policy gives up on
        return Reading(durable, streams.pop() or "", kinds, subjects, policy)

    def _record(
        self, action: Action, subject: str, message: type[msgspec.Struct] | None, **more: Any
    ) -> None:
        self.traffic.append(Traffic(self.name, action, subject, message, **more))


def _within(subject: str, pattern: str) -> bool:
    """``subject`` is matched by the filter ``pattern`` (``*`` one token, ``>`` the rest)."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for i, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > i
        if i >= len(tokens) or want not in ("*", tokens[i]):
            return False
    return len(tokens) == len(wanted)


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verifying the server against ``ca_file``; None leaves TLS to the URL's scheme
    (``tls://`` verifies against the system's trust store)."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else None


def _security(ca_file: Path | None) -> BaseSecurity | None:
    context = tls_context(ca_file)
    return BaseSecurity(ssl_context=context) if context else None


async def _the_message(msg: NatsMessage) -> NatsMessage:
    """The decoder that hands listeners the message: they decode its body themselves."""
    return msg


def configure_logging(level: str, service: str) -> None:
    logging.basicConfig(
        level=level, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"
    )
