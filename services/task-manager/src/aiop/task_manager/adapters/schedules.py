"""Schedules and their ticks in PostgreSQL (migration 0008)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiop.contracts.schedules import ScheduleIn, ScheduleView, TickView
from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters.outbox import OutboxRow

TICKS_SHOWN = 20


@dataclass(frozen=True)
class Scheduled:
    """A stored schedule, as the scheduler fires it."""

    id: str
    project: str
    name: str
    cron: str
    timezone: str
    template: str | None  # what it starts: a template, or
    task: str | None  # a task of its project
    parameters: dict[str, Any]
    policy: str
    catch_up_limit: int
    created_by: str
    next_at: datetime


async def insert(
    conn: Conn, schedule_id: str, project: str, given: ScheduleIn, principal: str,
    next_at: datetime,
) -> ScheduleView | None:  # fmt: skip
    """The stored schedule; None if the project has one of that name already."""
    row = await conn.fetchrow(
        "insert into schedules (id, project, name, cron, timezone, template, task, parameters,"
        " policy, catch_up_limit, enabled, next_at, created_by)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)"
        " on conflict (project, name) do nothing returning *",
        schedule_id, project, given.name, given.cron, given.timezone, given.template,
        given.task, json.dumps(given.parameters), given.policy, given.catch_up_limit,
        given.enabled, next_at, principal,
    )  # fmt: skip
    return None if row is None else _view(row)


async def listed(conn: Conn, project: str) -> list[ScheduleView]:
    rows = await conn.fetch("select * from schedules where project = $1 order by name", project)
    return [_view(r) for r in rows]


async def one(conn: Conn, project: str, name: str, *, locked: bool = False) -> Any:
    """The schedule's row, or None; ``locked`` holds it until the transaction ends."""
    query = "select * from schedules where project = $1 and name = $2"
    return await conn.fetchrow(query + (" for update" if locked else ""), project, name)


async def shown(conn: Conn, project: str, name: str) -> ScheduleView | None:
    """The schedule with its latest ticks, each with the state of the workflow it started."""
    row = await one(conn, project, name)
    if row is None:
        return None
    ticks = await conn.fetch(
        "select t.tick, t.fired_at, t.workflow_id, t.error, w.state from schedule_ticks t"
        " left join workflows w on w.id = t.workflow_id"
        " where t.schedule_id = $1 order by t.tick desc limit $2",
        row["id"], TICKS_SHOWN,
    )  # fmt: skip
    return _view(row, [TickView(**dict(t)) for t in ticks])


async def delete(conn: Conn, project: str, name: str) -> ScheduleView | None:
    row = await conn.fetchrow(
        "delete from schedules where project = $1 and name = $2 returning *", project, name
    )
    return None if row is None else _view(row)


async def set_enabled(conn: Conn, schedule_id: str, enabled: bool, next_at: datetime) -> Any:
    return await conn.fetchrow(
        "update schedules set enabled = $2, next_at = $3 where id = $1 returning *",
        schedule_id, enabled, next_at,
    )  # fmt: skip


async def lock_due(conn: Conn, now: datetime, limit: int) -> list[Scheduled]:
    """The enabled schedules due at ``now``, locked for this transaction; those another
    task-manager has locked are skipped, not waited for: it is firing them."""
    rows = await conn.fetch(
        "select * from schedules where enabled and next_at <= $1"
        " order by next_at limit $2 for update skip locked",
        now, limit,
    )  # fmt: skip
    return [_scheduled(r) for r in rows]


async def record_tick(
    conn: Conn, schedule_id: str, tick: datetime, workflow_id: str | None, error: str | None
) -> bool:
    """Record a fired tick; False if it was recorded before (it must not fire again)."""
    inserted = await conn.fetchval(
        "insert into schedule_ticks (schedule_id, tick, workflow_id, error)"
        " values ($1, $2, $3, $4) on conflict do nothing returning true",
        schedule_id, tick, workflow_id, error,
    )  # fmt: skip
    return bool(inserted)


async def queue(conn: Conn, row: OutboxRow) -> None:
    """Put a tick's run in the outbox, in the transaction that records the tick."""
    await conn.execute(
        "insert into outbox (id, subject, headers, body) values ($1, $2, $3::jsonb, $4)"
        " on conflict (id) do nothing",
        row.id, row.subject, json.dumps(row.headers), row.body,
    )  # fmt: skip


async def advance(conn: Conn, schedule_id: str, next_at: datetime) -> None:
    await conn.execute("update schedules set next_at = $2 where id = $1", schedule_id, next_at)


async def seconds_to_next(conn: Conn) -> float | None:
    """Seconds until the earliest enabled schedule is due (negative: overdue); None if
    there is none. By the database's clock, which decides what is due."""
    value = await conn.fetchval(
        "select extract(epoch from min(next_at) - clock_timestamp()) from schedules where enabled"
    )
    return None if value is None else float(value)


def _scheduled(r: Any) -> Scheduled:
    return Scheduled(
        id=r["id"], project=r["project"], name=r["name"], cron=r["cron"],
        timezone=r["timezone"], template=r["template"], task=r["task"],
        parameters=json.loads(r["parameters"]),
        policy=r["policy"], catch_up_limit=r["catch_up_limit"], created_by=r["created_by"],
        next_at=r["next_at"],
    )  # fmt: skip


def _view(row: Any, ticks: list[TickView] | None = None) -> ScheduleView:
    return ScheduleView(
        project=row["project"], name=row["name"], cron=row["cron"], timezone=row["timezone"],
        template=row["template"], task=row["task"], parameters=json.loads(row["parameters"]),
        policy=row["policy"], catch_up_limit=row["catch_up_limit"], enabled=row["enabled"],
        next_at=row["next_at"] if row["enabled"] else None, created_at=row["created_at"],
        created_by=row["created_by"], ticks=ticks or [],
    )  # fmt: skip
