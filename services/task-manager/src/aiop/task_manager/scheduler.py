"""The scheduler loop: fires each due schedule tick exactly once, however many
task-manager replicas run it (ADR 0011).

One pass is one transaction: lock the due schedules (``for update skip locked``: a
schedule another replica is firing is left to it), record each tick (unique per
schedule and tick), move ``next_at`` past it, and write the run's WorkflowSubmitted to
the outbox. The outbox rows are published after the commit; the relay publishes what
that misses. The workflow id derives from the schedule and the tick, so even a tick
fired twice would name one workflow.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import nats.errors
from opentelemetry import trace

from aiop.contracts.events import Origin
from aiop.servicekit.tasks import cancel_and_wait
from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters import schedules as store
from aiop.task_manager.adapters.outbox import OutboxRow
from aiop.task_manager.adapters.schedules import Scheduled
from aiop.task_manager.domain.schedule import due
from aiop.task_manager.handlers import Handlers
from aiop.task_manager.submissions import (
    CannotRender,
    check_active,
    rendered,
    run_id,
    submission,
    task_rendered,
)

log = logging.getLogger("aiop.task_manager.scheduler")
tracer = trace.get_tracer("aiop.task_manager.scheduler")

TICK_PLACEHOLDER = "${{ schedule.tick }}"
BATCH = 100  # schedules locked by one pass; more are taken by the next, at once
# Failures that pass (NATS away while reading the template): the schedule stays due and
# its tick fires on a later pass, late rather than never.
TRANSIENT = (nats.errors.Error, OSError, TimeoutError)


async def run_of(
    conn: Conn, templates: Any, schedule: Scheduled, tick: datetime
) -> tuple[str, OutboxRow]:
    """What ``schedule``'s target (a template, or a task of its project) starts at
    ``tick``: the workflow id and the outbox row submitting it; CannotRender if it starts
    nothing (its project archived, say). The one place a target becomes a run, whatever
    kind of target it is."""
    parameters = _with_tick(schedule.parameters, tick.astimezone(UTC).isoformat())
    if schedule.task is not None:
        spec, ref, filled = await task_rendered(
            conn, templates, schedule.project, schedule.task, parameters
        )
    else:
        assert schedule.template is not None
        await check_active(conn, schedule.project)
        spec, ref, filled = await rendered(
            templates, schedule.project, schedule.template, parameters
        )
    workflow_id = run_id("schedule", schedule.id, tick.astimezone(UTC).isoformat())
    origin = Origin(kind="schedule", schedule=schedule.name, tick=tick.astimezone(UTC))
    row = submission(
        spec, workflow_id=workflow_id, principal=schedule.created_by, origin=origin,
        template=ref, parameters=filled, task=schedule.task,
    )  # fmt: skip
    return workflow_id, row


class Scheduler:
    """Runs passes until stopped: after each, sleeps until the next tick is due, at
    most ``max_sleep_s`` (other replicas create schedules too), or until woken."""

    def __init__(self, handlers: Handlers, max_sleep_s: float = 1.0) -> None:
        self.h = handlers
        self.max_sleep_s = max_sleep_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held = False  # this pass left a due schedule for later (NATS away)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    def wake(self) -> None:
        """A schedule was created or resumed: look again now."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self.max_sleep_s
        while True:
            self._wake.clear()
            try:
                delay = await self.fire_due()
                backoff = self.max_sleep_s
            except Exception as exc:  # PostgreSQL away: nothing fired, nothing lost
                backoff = min(backoff * 2, 30.0)
                delay = backoff
                log.warning("scheduler pass failed, retrying in %.1fs: %r", delay, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def fire_due(self) -> float:
        """Fire every due tick; the seconds to sleep before the next pass."""
        fired: list[OutboxRow] = []
        self._held = False
        async with self.h.pool.acquire() as conn:
            async with conn.transaction():
                now: datetime = await conn.fetchval("select now()")
                schedules = await store.lock_due(conn, now, BATCH)
                for schedule in schedules:
                    fired += await self._fire(conn, schedule, now)
            until_next = await store.seconds_to_next(conn)
        await self.h.outbox.publish_now(fired)
        if len(schedules) == BATCH:
            return 0.0  # more are due than one pass takes
        if until_next is None or self._held:
            return self.max_sleep_s  # a schedule held back is tried again, not spun on
        # A little past the tick, so that it is due when the pass looks; never a busy
        # loop on a schedule another replica holds locked.
        return min(max(until_next + 0.005, 0.02), self.max_sleep_s)

    async def _fire(self, conn: Conn, schedule: Scheduled, now: datetime) -> list[OutboxRow]:
        """Fire ``schedule``'s due ticks under a savepoint: a failure that passes leaves
        it due for a later pass, and the other schedules of this pass fire regardless."""
        ticks = due(
            schedule.cron, schedule.timezone, schedule.next_at, now, schedule.policy,
            schedule.catch_up_limit,
        )  # fmt: skip
        if ticks.missed:
            log.info("schedule %s/%s: %d missed tick(s) not run (policy %s)",
                     schedule.project, schedule.name, ticks.missed, schedule.policy)  # fmt: skip
        rows: list[OutboxRow] = []
        try:
            async with conn.transaction():
                for tick in ticks.fire:
                    rows += await self._fire_tick(conn, schedule, tick)
                await store.advance(conn, schedule.id, ticks.next_at)
        except TRANSIENT as exc:
            self._held = True
            log.warning("schedule %s/%s not fired, trying again: %r",
                        schedule.project, schedule.name, exc)  # fmt: skip
            return []
        return rows

    async def _fire_tick(self, conn: Conn, schedule: Scheduled, tick: datetime) -> list[OutboxRow]:
        attributes = {"aiop.schedule": schedule.name, "aiop.project": schedule.project,
                      "aiop.tick": tick.isoformat()}  # fmt: skip
        # Each run's trace starts at the tick that decided it.
        with tracer.start_as_current_span("schedule tick", attributes=attributes):
            try:
                workflow_id, row = await run_of(conn, self.h.templates, schedule, tick)
            except TRANSIENT:
                raise
            except CannotRender as exc:
                return await self._record(conn, schedule, tick, None, str(exc))
            except Exception as exc:  # recorded, rather than tried again every pass
                log.exception("schedule %s/%s: tick %s", schedule.project, schedule.name, tick)
                reason = f"{type(exc).__name__}: {exc}"
                return await self._record(conn, schedule, tick, None, reason)
            return await self._record(conn, schedule, tick, workflow_id, None, row)

    async def _record(
        self, conn: Conn, schedule: Scheduled, tick: datetime, workflow_id: str | None,
        error: str | None, row: OutboxRow | None = None,
    ) -> list[OutboxRow]:  # fmt: skip
        if not await store.record_tick(conn, schedule.id, tick, workflow_id, error):
            log.warning("schedule %s/%s: tick %s fired before; not again",
                        schedule.project, schedule.name, tick)  # fmt: skip
            return []
        if error is not None:
            log.warning("schedule %s/%s: tick %s started nothing: %s",
                        schedule.project, schedule.name, tick, error)  # fmt: skip
        if row is None:
            return []
        await store.queue(conn, row)
        return [row]


def _with_tick(value: Any, tick: str) -> Any:
    """``value`` with ``${{ schedule.tick }}`` replaced by the tick, in every string."""
    if isinstance(value, str):
        return value.replace(TICK_PLACEHOLDER, tick)
    if isinstance(value, dict):
        return {k: _with_tick(v, tick) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_tick(v, tick) for v in value]
    return value
