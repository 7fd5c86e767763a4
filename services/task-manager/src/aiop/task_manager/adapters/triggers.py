"""Triggers and the external events they were matched against, in PostgreSQL."""

import json
from typing import Any

import msgspec

from aiop.contracts.triggers import (
    CloudEvent,
    EventPage,
    EventRecord,
    EventsQuery,
    Trigger,
    TriggerRun,
    TriggerTarget,
)
from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters.outbox import OutboxRow

_target = msgspec.json.Decoder(TriggerTarget)
_runs = msgspec.json.Decoder(list[TriggerRun])
_encode = msgspec.json.Encoder().encode


class BadCursor(ValueError):
    """A cursor no page of this listing gave."""


async def save(conn: Conn, trigger: Trigger, principal: str) -> tuple[Trigger, bool]:
    """Store ``trigger``, replacing one of the same name; (stored, created)."""
    row = await conn.fetchrow(
        "insert into triggers (project, name, event_type, source, filter, target, enabled,"
        "  description, created_by)"
        " values ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9)"
        " on conflict (project, name) do update set event_type = excluded.event_type,"
        "  source = excluded.source, filter = excluded.filter, target = excluded.target,"
        "  enabled = excluded.enabled, description = excluded.description,"
        "  created_by = excluded.created_by, updated_at = now()"
        " returning *, (xmax = 0) as created",
        trigger.project, trigger.name, trigger.event_type, trigger.source,
        json.dumps(trigger.filter), _encode(trigger.target).decode(), trigger.enabled,
        trigger.description, principal,
    )  # fmt: skip
    assert row is not None
    return _trigger(row), bool(row["created"])


async def find(conn: Conn, project: str, name: str) -> Trigger | None:
    row = await conn.fetchrow(
        "select * from triggers where project = $1 and name = $2", project, name
    )
    return _trigger(row) if row is not None else None


async def listed(conn: Conn, project: str, enabled_only: bool = False) -> list[Trigger]:
    rows = await conn.fetch(
        "select * from triggers where project = $1 and (enabled or not $2) order by name",
        project,
        enabled_only,
    )
    return [_trigger(r) for r in rows]


async def delete(conn: Conn, project: str, name: str) -> Trigger | None:
    row = await conn.fetchrow(
        "delete from triggers where project = $1 and name = $2 returning *", project, name
    )
    return _trigger(row) if row is not None else None


async def record(conn: Conn, event: CloudEvent) -> bool:
    """Keep ``event``; False if it was kept before (a repeat starts nothing)."""
    inserted = await conn.fetchval(
        "insert into external_events (project, source, event_id, type, subject, time, data)"
        " values ($1, $2, $3, $4, $5, $6, $7::jsonb)"
        " on conflict (project, source, event_id) do nothing returning true",
        event.project, event.source, event.id, event.type, event.subject, event.time,
        _encode(event.data).decode(),
    )  # fmt: skip
    return bool(inserted)


async def set_runs(conn: Conn, event: CloudEvent, runs: list[TriggerRun]) -> None:
    await conn.execute(
        "update external_events set runs = $4::jsonb"
        " where project = $1 and source = $2 and event_id = $3",
        event.project, event.source, event.id, _encode(runs).decode(),
    )  # fmt: skip


async def queue(conn: Conn, rows: list[OutboxRow]) -> None:
    """Put ``rows`` in the outbox, in the caller's transaction."""
    await conn.executemany(
        "insert into outbox (id, subject, headers, body) values ($1, $2, $3::jsonb, $4)"
        " on conflict (id) do nothing",
        [(r.id, r.subject, json.dumps(r.headers), r.body) for r in rows],
    )


async def events(conn: Conn, query: EventsQuery, limit: int) -> EventPage:
    """A page of the project's events, newest first."""
    before = _cursor(query.cursor)
    pattern = query.type or "*"
    rows = await conn.fetch(
        "select * from external_events where project = $1"
        " and ($2::bigint is null or seq < $2)"
        " and (type = $3 or (right($3, 1) = '*' and starts_with(type, left($3, -1))))"
        " and ($4::bool is null or (runs <> '[]'::jsonb) = $4)"
        " order by seq desc limit $5",
        query.project, before, pattern, query.matched, limit + 1,
    )  # fmt: skip
    page = [_event(r) for r in rows[:limit]]
    more = len(rows) > limit
    return EventPage(
        project=query.project,
        events=page,
        next_cursor=str(rows[limit - 1]["seq"]) if more else None,
    )


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadCursor(f"cursor {cursor!r} is not one a page gave")
    return int(cursor)


def _trigger(row: Any) -> Trigger:
    return Trigger(
        project=row["project"], name=row["name"], event_type=row["event_type"],
        source=row["source"], filter=json.loads(row["filter"]),
        target=_target.decode(row["target"]), enabled=row["enabled"],
        description=row["description"], created_by=row["created_by"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )  # fmt: skip


def _event(row: Any) -> EventRecord:
    return EventRecord(
        project=row["project"], source=row["source"], id=row["event_id"], type=row["type"],
        received_at=row["received_at"], subject=row["subject"], time=row["time"],
        data=json.loads(row["data"]) if row["data"] is not None else None,
        runs=_runs.decode(row["runs"]),
    )  # fmt: skip
