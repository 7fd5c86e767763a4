"""Workflows, steps and the inbox in PostgreSQL. Every function runs on the caller's
connection, so the caller decides the transaction (effect + inbox row together)."""

from typing import Any

import msgspec

from aiop.contracts.queries import StepView, WorkflowView
from aiop.contracts.workflow import WorkflowSpec
from aiop.task_manager.adapters import Conn
from aiop.task_manager.domain import Step, Workflow

_STEP_FIELDS = (
    "state", "attempt", "exit_code", "started_at", "finished_at", "duration_s", "error",
    "output_tail",
)  # fmt: skip


async def claim(conn: Conn, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already has (redelivery)."""
    inserted = await conn.fetchval(
        "insert into inbox (consumer, event_id) values ($1, $2)"
        " on conflict do nothing returning true",
        consumer,
        event_id,
    )
    return bool(inserted)


async def insert_workflow(
    conn: Conn, wf: Workflow, spec: WorkflowSpec, trace_id: str | None
) -> bool:
    """Store a new workflow and its steps; False if the id is already taken."""
    created = await conn.fetchval(
        "insert into workflows (id, name, project, spec, state, reason, attempt, trace_id)"
        " values ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)"
        " on conflict (id) do nothing returning true",
        wf.id, spec.name, spec.project, msgspec.json.encode(spec).decode(), wf.state,
        wf.reason, wf.attempt, trace_id,
    )  # fmt: skip
    if not created:
        return False
    await conn.executemany(
        "insert into steps (workflow_id, position, name, needs, state, attempt)"
        " values ($1, $2, $3, $4, $5, $6)",
        [(wf.id, i, s.name, list(s.needs), s.state, s.attempt) for i, s in enumerate(wf.steps)],
    )
    return True


async def load(conn: Conn, workflow_id: str) -> Workflow | None:
    """The workflow, locked until the transaction ends: events of one workflow arrive on
    several consumers at once, and each must fold onto the state the previous one left."""
    row = await conn.fetchrow(
        "select id, state, attempt, reason, pool, executor_id, started_at, finished_at"
        " from workflows where id = $1 for update",
        workflow_id,
    )
    if row is None:
        return None
    steps = await conn.fetch(
        "select * from steps where workflow_id = $1 order by position", workflow_id
    )
    return Workflow(
        **dict(row),
        steps=tuple(
            Step(name=s["name"], needs=tuple(s["needs"]), **{f: s[f] for f in _STEP_FIELDS})
            for s in steps
        ),
    )


async def save(conn: Conn, old: Workflow, new: Workflow) -> None:
    """Write what changed from ``old`` to ``new``."""
    await conn.execute(
        "update workflows set state = $2, attempt = $3, reason = $4, pool = $5,"
        " executor_id = $6, started_at = $7, finished_at = $8, updated_at = now()"
        " where id = $1",
        new.id, new.state, new.attempt, new.reason, new.pool, new.executor_id,
        new.started_at, new.finished_at,
    )  # fmt: skip
    changed = [s for s, before in zip(new.steps, old.steps, strict=True) if s != before]
    await conn.executemany(
        "update steps set state = $3, attempt = $4, exit_code = $5, started_at = $6,"
        " finished_at = $7, duration_s = $8, error = $9, output_tail = $10"
        " where workflow_id = $1 and name = $2",
        [(new.id, s.name, *(getattr(s, f) for f in _STEP_FIELDS)) for s in changed],
    )


async def view(conn: Conn, workflow_id: str) -> WorkflowView | None:
    row = await conn.fetchrow("select * from workflows where id = $1", workflow_id)
    if row is None:
        return None
    steps = await conn.fetch(
        "select * from steps where workflow_id = $1 order by position", workflow_id
    )
    return WorkflowView(
        workflow_id=row["id"], name=row["name"], project=row["project"], state=row["state"],
        reason=row["reason"], attempt=row["attempt"], executor_id=row["executor_id"],
        trace_id=row["trace_id"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], steps=[_step_view(s) for s in steps],
    )  # fmt: skip


def _step_view(s: Any) -> StepView:
    return StepView(
        name=s["name"], state=s["state"], needs=list(s["needs"]), attempt=s["attempt"],
        exit_code=s["exit_code"], started_at=s["started_at"], finished_at=s["finished_at"],
        duration_s=s["duration_s"], error=s["error"], output_tail=s["output_tail"],
    )  # fmt: skip
