"""Durable JetStream pull consumers, run by servicekit's own fetch loop (ADR 0006).

Each consumer fetches up to ``batch_size`` messages and either hands each to its handler
with at most ``max_workers`` in flight, or hands the whole fetch to a batch handler,
which can fold it in one transaction or one write per key (``durable_batch_consumer``).
Either way every message is settled under the DeliveryPolicy, and one span per message
continues the publisher's trace. FastStream still owns the connection, the app
lifecycle and core NATS subscriptions; its per-message pipeline cost three times the
CPU of this loop (docs/performance.md).
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from aiop.contracts.subjects import STREAM_EVENTS
from aiop.servicekit.delivery import DeliveryPolicy, settle, settle_outcome

if TYPE_CHECKING:
    from aiop.servicekit.bus import EventBus

log = logging.getLogger("aiop.consumer")
tracer = trace.get_tracer("aiop.consumer")

Handler = Callable[[Msg], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One message of a fetched batch, with the span that continues its publisher's trace."""

    msg: Msg
    span: Span

    @contextlib.contextmanager
    def active(self) -> Iterator[Span]:
        """Make this message's span current, e.g. while building the events it causes, so
        that they continue its trace."""
        with trace.use_span(self.span, end_on_exit=False) as span:
            yield span


# What became of each message of a batch, in order: None for handled, else the error,
# which decides between NAK and dead letter as a per-message handler's exception would.
Outcomes = list[BaseException | None]
BatchHandler = Callable[[list[Delivery]], Awaitable[Outcomes]]
FETCH_WAIT = 1.0  # seconds a fetch waits on an idle stream before asking again
STOP_GRACE = 10.0  # seconds in-flight handlers get to finish at shutdown
DEFAULT_POLICY = DeliveryPolicy()


@dataclass
class DurableConsumer:
    subjects: tuple[str, ...]
    durable: str
    stream: str
    policy: DeliveryPolicy
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    _task: asyncio.Task[None] | None = None
    _sub: JetStreamContext.PullSubscription | None = None
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def config(self) -> ConsumerConfig:
        p = self.policy
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
            filter_subjects=list(self.subjects) if len(self.subjects) > 1 else None,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=p.ack_wait,
            max_deliver=p.max_deliver,
            max_ack_pending=p.max_ack_pending,
            backoff=[p.ack_wait] * 2,
        )

    async def start(self, nc: Client, bus: "EventBus") -> None:
        js = nc.jetstream()
        self._sub = await js.pull_subscribe(
            self.subjects[0], self.durable, stream=self.stream, config=self.config()
        )
        self._task = asyncio.create_task(self._run(self._sub, bus), name=f"consume {self.durable}")

    async def _run(self, sub: JetStreamContext.PullSubscription, bus: "EventBus") -> None:
        slots = asyncio.Semaphore(self.policy.max_workers)
        while True:
            try:
                messages = await sub.fetch(self.policy.batch_size, timeout=FETCH_WAIT)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or restarting: the client reconnects
                log.warning("%s: fetch failed, retrying: %r", self.durable, exc)
                await asyncio.sleep(0.5)
                continue
            if self.batch_handler is not None:
                await self._batch(messages, bus)
                if self.policy.linger and len(messages) < self.policy.batch_size:
                    await asyncio.sleep(self.policy.linger)
                continue
            for msg in messages:
                await slots.acquire()
                task = asyncio.create_task(self._one(msg, bus))
                self._in_flight.add(task)

                def done(task: asyncio.Task[None]) -> None:
                    self._in_flight.discard(task)
                    slots.release()

                task.add_done_callback(done)

    def _span(self, msg: Msg) -> Span:
        return tracer.start_span(
            f"{msg.subject} process",
            context=propagate.extract(msg.headers or {}),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.consumer.group.name": self.durable},
        )  # fmt: skip

    async def _one(self, msg: Msg, bus: "EventBus") -> None:
        assert self.handler is not None
        with trace.use_span(self._span(msg), end_on_exit=True):
            try:
                await settle(msg, self.handler, self.policy, bus)
            except Exception as exc:  # the ack or NAK itself failed: ack_wait redelivers
                log.warning("%s: could not settle %s: %r", self.durable, msg.subject, exc)

    async def _batch(self, messages: list[Msg], bus: "EventBus") -> None:
        assert self.batch_handler is not None
        batch = [Delivery(msg, self._span(msg)) for msg in messages]
        outcomes = await self._outcomes(batch)
        for one, outcome in zip(batch, outcomes, strict=True):
            if outcome is not None:
                one.span.record_exception(outcome)
                one.span.set_status(Status(StatusCode.ERROR, str(outcome)))
            try:
                await settle_outcome(one.msg, outcome, self.policy, bus)
            except Exception as exc:  # the ack or NAK itself failed: ack_wait redelivers
                log.warning("%s: could not settle %s: %r", self.durable, one.msg.subject, exc)
            one.span.end()

    async def _outcomes(self, batch: list[Delivery]) -> Outcomes:
        assert self.batch_handler is not None
        try:
            outcomes = await self.batch_handler(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            # The shared work failed. Handle each message on its own, so that one message
            # that breaks it (a poison row, say) fails alone instead of failing the rest.
            log.warning("%s: batch of %d failed, handling one by one: %r",
                        self.durable, len(batch), exc)  # fmt: skip
            return [(await self._outcomes([one]))[0] for one in batch]
        if len(outcomes) != len(batch):  # a handler bug must not ack what it never handled
            error = RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
            return [error] * len(batch)
        return outcomes

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=STOP_GRACE)
        if self._sub is not None:
            # Else the connection's drain at shutdown waits out its timeout on the fetch
            # inbox's leftover status messages, which nothing will read any more.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


_consumers: "weakref.WeakKeyDictionary[NatsBroker, list[DurableConsumer]]" = (
    weakref.WeakKeyDictionary()
)
_buses: "weakref.WeakKeyDictionary[NatsBroker, EventBus]" = weakref.WeakKeyDictionary()


def attach_bus(broker: NatsBroker, bus: "EventBus") -> None:
    """The bus that dead-letters for ``broker``'s consumers (``make_broker`` calls this)."""
    _buses[broker] = bus


def _add(broker: NatsBroker, subject: str | Sequence[str], durable: str, stream: str,
         policy: DeliveryPolicy, **handler: Handler | BatchHandler) -> None:  # fmt: skip
    subjects = (subject,) if isinstance(subject, str) else tuple(subject)
    consumer = DurableConsumer(subjects, durable, stream, policy, **handler)  # type: ignore[arg-type]
    _consumers.setdefault(broker, []).append(consumer)


def durable_consumer(
    broker: NatsBroker,
    subject: str | Sequence[str],
    durable: str,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    stream: str = STREAM_EVENTS,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as a durable pull consumer of ``subject`` (one filter or
    several) on ``broker``; it starts with the service (``service_app``), after the
    streams exist."""

    def register(handler: Handler) -> Handler:
        _add(broker, subject, durable, stream, policy, handler=handler)
        return handler

    return register


def durable_batch_consumer(
    broker: NatsBroker,
    subject: str | Sequence[str],
    durable: str,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    stream: str = STREAM_EVENTS,
) -> Callable[[BatchHandler], BatchHandler]:
    """As ``durable_consumer``, but ``handler`` gets each fetch whole (up to the policy's
    ``batch_size`` messages, in stream order) and returns one outcome per message. Under
    load a fetch holds many messages, so shared work (a transaction, a key write) is paid
    once per fetch instead of once per message; idle, a fetch is one message."""

    def register(handler: BatchHandler) -> BatchHandler:
        _add(broker, subject, durable, stream, policy, batch_handler=handler)
        return handler

    return register


async def start_consumers(broker: NatsBroker) -> None:
    for consumer in _consumers.get(broker, []):
        await consumer.start(broker.connection, _buses[broker])


async def stop_consumers(broker: NatsBroker) -> None:
    await asyncio.gather(*(c.stop() for c in _consumers.get(broker, [])))
