"""The transactional outbox: events are written with the state that decided them and
published after the commit (docs/delivery.md, "Effects exactly once").

Two ways out, both publishing with ``Nats-Msg-Id`` = the row id so JetStream drops
whatever is published twice: the fast path right after the commit (latency), and a relay
loop for rows the fast path could not publish (NATS away, a crash between commit and
publish). A row leaves the outbox only by being published; it is never marked failed.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from opentelemetry import propagate, trace

from aiop.contracts.envelope import encode_event
from aiop.contracts.events import Event
from aiop.servicekit import EventBus
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.task_manager.outbox")
tracer = trace.get_tracer("aiop.task_manager.outbox")

SOURCE = "aiop/task-manager"
BATCH = 100


@dataclass(frozen=True)
class OutboxRow:
    id: str
    subject: str
    headers: dict[str, str]
    body: bytes


def outbox_row(event: Event) -> OutboxRow:
    """The row for ``event``, carrying the current trace context so that the publish,
    however much later it happens, continues the trace that decided it."""
    envelope = encode_event(event, SOURCE)
    headers = dict(envelope.headers)
    propagate.inject(headers)
    return OutboxRow(event.event_id, envelope.subject, headers, envelope.body)


class Outbox:
    """Publishes outbox rows on ``bus``: at once, and by a relay loop until sent."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: EventBus,
        *,
        interval: float = 1.0,
        grace: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.interval = interval
        # Rows younger than this are the fast path's to publish; the relay leaves them be
        # unless woken because the fast path failed.
        self.grace = grace
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish_now(self, rows: Sequence[OutboxRow]) -> None:
        """Fast path after a commit. Never raises: the event is decided and stored, so a
        failure here is the relay's to repair, not a reason to redeliver the input."""
        if not rows:
            return
        try:
            await asyncio.gather(*(self._publish(row) for row in rows))
            await self._mark_published([row.id for row in rows])
        except Exception as exc:
            log.warning("outbox fast path failed, the relay will retry: %r", exc)
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def run(self) -> None:
        """Relay forever, backing off while PostgreSQL or NATS is away."""
        delay = self.interval
        while True:
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                await self.relay(grace=0.0 if woken else self.grace)
                delay = self.interval
            except Exception as exc:
                delay = min(max(delay, self.interval) * 2, self.max_backoff)
                log.warning("outbox relay failed, retrying in %.1fs: %r", delay, exc)
            with contextlib.suppress(TimeoutError):  # woken early, or time for a pass
                await asyncio.wait_for(self._wake.wait(), delay)

    async def relay(self, grace: float = 0.0) -> int:
        """Publish every unpublished row older than ``grace`` seconds; how many were sent."""
        sent = 0
        while True:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "select id, subject, headers, body from outbox where published_at is null"
                    " and created_at <= now() - make_interval(secs => $1)"
                    " order by created_at limit $2",
                    grace,
                    BATCH,
                )
            for r in rows:
                row = OutboxRow(r["id"], r["subject"], json.loads(r["headers"]), r["body"])
                await self._publish(row)
                await self._mark_published([row.id])
                sent += 1
            if len(rows) < BATCH:
                return sent

    async def _publish(self, row: OutboxRow) -> None:
        # Continue the stored trace, not whatever happens to be current (the relay loop).
        ctx = propagate.extract(row.headers)
        with tracer.start_as_current_span(f"outbox publish {row.subject}", context=ctx):
            await self.bus.publish_encoded(row.subject, row.body, row.headers)

    async def _mark_published(self, ids: list[str]) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "update outbox set published_at = now() where id = any($1::text[])", ids
            )
