"""Durable JetStream pull consumers, run by servicekit's own fetch loop (ADR 0006).

A consumer hands each message to its handler with at most ``workers`` in flight
(``EachConsumer``), or each fetch whole to a handler that can fold it in one transaction
or one write per key (``BatchConsumer``). Either way every message is decoded to one of
the consumer's event types, settled under the DeliveryPolicy, and gets one span that
continues its publisher's trace.

At the edges (docs/delivery.md, "Consumers"):
- a fetch asks for no more messages than there are free workers, because a message that
  waits in memory still burns its ack timer;
- stopping ends the fetching first, lets in-flight handlers (a batch's transaction
  included) finish within a grace period, and NAKs at once whatever was fetched but never
  started, so that it is redelivered now rather than after ``ack_wait``.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from aiop.contracts.envelope import decode_event, event_type_of
from aiop.contracts.events import Event
from aiop.servicekit.delivery import DeadLetter, DeliveryPolicy, Permanent, settle
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.consumer")
tracer = trace.get_tracer("aiop.consumer")

E = TypeVar("E", bound=Event)
# Seconds one fetch waits on an idle stream. A stop waits out the fetch in progress (its
# pull request lives on in the server, and what it delivers must be handed back), so
# this also bounds how long stopping takes.
FETCH_WAIT_S = 0.5
RETRY_FETCH_S = 0.5  # after a failed fetch: NATS away or restarting, the client reconnects


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One message of a fetch, its event, and the span that continues its publisher's trace."""

    msg: Msg
    event: E
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


@dataclass(frozen=True)
class Reading:
    """What a durable consumer reads: its name, stream, event types and filters."""

    durable: str
    stream: str
    events: tuple[type[Event], ...]
    subjects: tuple[str, ...]
    policy: DeliveryPolicy

    def config(self) -> ConsumerConfig:
        p = self.policy
        one = len(self.subjects) == 1
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subjects[0] if one else None,
            filter_subjects=None if one else list(self.subjects),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=p.ack_wait_s,
            max_deliver=p.max_deliver,
            max_ack_pending=p.max_ack_pending,
        )


class PullConsumer:
    """The fetch loop and its stop; subclasses decide how a fetch is handled."""

    def __init__(self, reading: Reading, dead_letter: DeadLetter) -> None:
        self.reading = reading
        self.dead_letter = dead_letter
        self._types = {cls.TYPE: cls for cls in reading.events}
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def durable(self) -> str:
        return self.reading.durable

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def start(self, js: JetStreamContext) -> None:
        r = self.reading
        # Create, or update to this configuration: binding to an existing durable alone
        # would leave the settings it was first created with.
        await js.add_consumer(r.stream, r.config())
        self._sub = await js.pull_subscribe_bind(r.durable, r.stream)
        self._task = asyncio.create_task(self._run(self._sub), name=f"consume {r.durable}")

    async def stop(self, grace_s: float) -> None:
        """Stop fetching; give work in hand ``grace_s`` to finish, then cancel it."""
        self._stopping.set()
        self._wake()
        deadline = asyncio.get_running_loop().time() + grace_s + FETCH_WAIT_S
        if self._task is not None:
            await _finish_or_cancel({self._task}, deadline)
        await self._drain(deadline)
        if self._sub is not None:
            # Else the connection's drain at shutdown waits out its timeout on the fetch
            # inbox's leftover status messages, which nothing will read any more.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def _wake(self) -> None:
        """Wake a loop that waits for something other than a fetch."""

    async def _drain(self, deadline: float) -> None:
        """Wait for handlers still running after the loop ended (per-message consumers)."""

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        raise NotImplementedError

    async def _fetch(self, sub: JetStreamContext.PullSubscription, count: int) -> list[Msg]:
        """Up to ``count`` messages; none after a quiet wait or a failed fetch. What a fetch
        brings in after stopping began is handed back, never started."""
        try:
            messages = await sub.fetch(count, timeout=FETCH_WAIT_S)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: fetch failed, retrying: %r", self.durable, exc)
            await self._pause(RETRY_FETCH_S)
            return []
        if self._stopping.is_set():
            await asyncio.gather(*(_hand_back(msg) for msg in messages))
            return []
        return messages

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping begins."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _span(self, msg: Msg) -> Span:
        return tracer.start_span(
            f"{msg.subject} process",
            context=propagate.extract(msg.headers or {}),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.consumer.group.name": self.durable},
        )  # fmt: skip

    def _decode(self, msg: Msg) -> Event:
        """The message's event, if it is one this consumer takes; Permanent or
        UndecodableEvent (both dead-lettered) otherwise."""
        kind = event_type_of(msg.subject, dict(msg.headers or {}))
        if kind is None or kind.TYPE not in self._types:
            raise Permanent(f"{self.durable} does not take {msg.subject}")
        return decode_event(msg.data, kind)

    async def _settle(self, msg: Msg, span: Span, outcome: BaseException | None) -> None:
        if outcome is not None:
            span.record_exception(outcome)
            span.set_status(Status(StatusCode.ERROR, str(outcome)))
        try:
            await settle(msg, outcome, self.reading.policy, self.dead_letter)
        except Exception as exc:  # the ack or NAK itself failed: ack_wait redelivers
            log.warning("%s: could not settle %s: %r", self.durable, msg.subject, exc)


class EachConsumer(PullConsumer, Generic[E]):
    """Each message to ``handler`` on its own, at most ``workers`` at a time."""

    def __init__(
        self,
        reading: Reading,
        dead_letter: DeadLetter,
        handler: Callable[[E], Awaitable[None]],
        workers: int = 1,
    ) -> None:
        super().__init__(reading, dead_letter)
        self.handler = handler
        self.workers = workers
        self._free = workers
        self._freed = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            if self._free == 0:
                self._freed.clear()
                await self._freed.wait()  # a handler ended, or stopping began
                continue
            for msg in await self._fetch(sub, self._free):
                self._free -= 1
                task = asyncio.create_task(self._one(msg))
                self._in_flight.add(task)
                task.add_done_callback(self._done)

    def _wake(self) -> None:
        self._freed.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._free += 1
        self._freed.set()

    async def _one(self, msg: Msg) -> None:
        span = self._span(msg)
        with trace.use_span(span, end_on_exit=True):
            try:
                await self.handler(self._decode(msg))  # type: ignore[arg-type]
            except asyncio.CancelledError:
                await _hand_back(msg)
                raise
            except Exception as exc:
                await self._settle(msg, span, exc)
            else:
                await self._settle(msg, span, None)

    async def _drain(self, deadline: float) -> None:
        if self._in_flight:
            await _finish_or_cancel(set(self._in_flight), deadline)


class MessageConsumer(EachConsumer[Any]):
    """Each message, read by ``read`` rather than as an AIOP event: for what systems
    outside the platform publish (CloudEvents under ``ext.>``). ``read`` raises Permanent
    for a message it cannot take, which is dead-lettered with the reason."""

    def __init__(
        self,
        reading: Reading,
        dead_letter: DeadLetter,
        read: Callable[[Msg], Any],
        handler: Callable[[Any], Awaitable[None]],
        workers: int = 1,
    ) -> None:
        super().__init__(reading, dead_letter, handler, workers)
        self.read = read

    def _decode(self, msg: Msg) -> Any:
        return self.read(msg)


class BatchConsumer(PullConsumer, Generic[E]):
    """Each fetch whole to ``handler``, which returns one outcome per delivery.

    Under load a fetch holds many messages, so shared work (a transaction, a key write)
    is paid once per fetch; idle, a fetch is one message. After a fetch shorter than
    ``batch_size`` the loop waits ``linger_s``, so that under light load events gather
    into fewer, larger batches: for consumers off the critical path only.
    """

    def __init__(
        self,
        reading: Reading,
        dead_letter: DeadLetter,
        handler: Callable[[list[Delivery[E]]], Awaitable[Outcomes]],
        batch_size: int = 64,
        linger_s: float = 0.0,
    ) -> None:
        super().__init__(reading, dead_letter)
        self.handler = handler
        self.batch_size = batch_size
        self.linger_s = linger_s

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            messages = await self._fetch(sub, self.batch_size)
            if messages:
                await self._batch(messages)
            if self.linger_s and len(messages) < self.batch_size:
                await self._pause(self.linger_s)

    async def _batch(self, messages: list[Msg]) -> None:
        batch: list[Delivery[E]] = []
        for msg in messages:
            span = self._span(msg)
            try:
                batch.append(Delivery(msg, self._decode(msg), span))  # type: ignore[arg-type]
            except Exception as exc:
                await self._settle(msg, span, exc)
                span.end()
        try:
            outcomes = await self._outcomes(batch) if batch else []
        except asyncio.CancelledError:  # past the stop's grace: hand the whole fetch back
            for one in batch:
                await _hand_back(one.msg)
                one.span.end()
            raise
        for one, outcome in zip(batch, outcomes, strict=True):
            await self._settle(one.msg, one.span, outcome)
            one.span.end()

    async def _outcomes(self, batch: list[Delivery[E]]) -> Outcomes:
        try:
            outcomes = await self.handler(batch)
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


async def _hand_back(msg: Msg) -> None:
    """NAK without delay: another consumer (or this one, restarted) gets it now."""
    with contextlib.suppress(Exception):
        await msg.nak()


async def _finish_or_cancel(tasks: set[asyncio.Task[None]], deadline: float) -> None:
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    _, late = await asyncio.wait(tasks, timeout=timeout)
    await cancel_and_wait(late)
