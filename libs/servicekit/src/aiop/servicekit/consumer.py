"""Durable JetStream pull consumers, run by servicekit's own fetch loop (ADR 0006).

Each consumer fetches up to ``batch_size`` messages, hands each to its handler with at
most ``max_workers`` in flight, and settles each under the DeliveryPolicy. One span per
message continues the publisher's trace. FastStream still owns the connection, the app
lifecycle and core NATS subscriptions; its per-message pipeline cost three times the
CPU of this loop (docs/performance.md).
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
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
from opentelemetry.trace import SpanKind

from aiop.contracts.subjects import STREAM_EVENTS
from aiop.servicekit.delivery import DeliveryPolicy, settle

if TYPE_CHECKING:
    from aiop.servicekit.bus import EventBus

log = logging.getLogger("aiop.consumer")
tracer = trace.get_tracer("aiop.consumer")

Handler = Callable[[Msg], Awaitable[None]]
FETCH_WAIT = 1.0  # seconds a fetch waits on an idle stream before asking again
STOP_GRACE = 10.0  # seconds in-flight handlers get to finish at shutdown
DEFAULT_POLICY = DeliveryPolicy()


@dataclass
class DurableConsumer:
    subject: str
    durable: str
    stream: str
    policy: DeliveryPolicy
    handler: Handler
    _task: asyncio.Task[None] | None = None
    _sub: JetStreamContext.PullSubscription | None = None
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def config(self) -> ConsumerConfig:
        p = self.policy
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subject,
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
            self.subject, self.durable, stream=self.stream, config=self.config()
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
            for msg in messages:
                await slots.acquire()
                task = asyncio.create_task(self._one(msg, bus))
                self._in_flight.add(task)

                def done(task: asyncio.Task[None]) -> None:
                    self._in_flight.discard(task)
                    slots.release()

                task.add_done_callback(done)

    async def _one(self, msg: Msg, bus: "EventBus") -> None:
        context = propagate.extract(msg.headers or {})
        with tracer.start_as_current_span(
            f"{msg.subject} process", context=context, kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.consumer.group.name": self.durable},
        ):  # fmt: skip
            try:
                await settle(msg, self.handler, self.policy, bus)
            except Exception as exc:  # the ack or NAK itself failed: ack_wait redelivers
                log.warning("%s: could not settle %s: %r", self.durable, msg.subject, exc)

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


def durable_consumer(
    broker: NatsBroker,
    subject: str,
    durable: str,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    stream: str = STREAM_EVENTS,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as a durable pull consumer of ``subject`` on ``broker``; it
    starts with the service (``service_app``), after the streams exist."""

    def register(handler: Handler) -> Handler:
        consumer = DurableConsumer(subject, durable, stream, policy, handler)
        _consumers.setdefault(broker, []).append(consumer)
        return handler

    return register


async def start_consumers(broker: NatsBroker) -> None:
    for consumer in _consumers.get(broker, []):
        await consumer.start(broker.connection, _buses[broker])


async def stop_consumers(broker: NatsBroker) -> None:
    await asyncio.gather(*(c.stop() for c in _consumers.get(broker, [])))
