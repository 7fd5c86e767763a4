"""Workflows, steps and the inbox in PostgreSQL. Every function runs on the caller's
connection, so the caller decides the transaction (effect + inbox row together)."""

import json
from typing import Any

import msgspec

from aiop.contracts.queries import StepView, WorkflowView
from aiop.contracts.workflow import WorkflowSpec
from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters.outbox import OutboxRow
from aiop.task_manager.domain import Step, Workflow

_STEP_FIELDS = (
    "state", "attempt", "exit_code", "started_at", "finished_at", "duration_s", "error",
    "output_tail",
)  # fmt: skip


async def accept(
    conn: Conn,
    consumer: str,
    event_id: str,
    wf: Workflow,
    spec: WorkflowSpec,
    trace_id: str | None,
    answer: OutboxRow,
) -> tuple[bool, bool]:
    """Claim the submission, store the workflow with its steps and queue ``answer`` in the
    outbox: one statement, so one round trip and atomic without BEGIN/COMMIT.

    Returns (claimed, created): not claimed is a redelivery; claimed but not created
    means the workflow id was already taken, and nothing but the inbox row was written.
    """
    steps = [
        {"name": s.name, "needs": list(s.needs), "state": s.state, "attempt": s.attempt}
        for s in wf.steps
    ]
    row = await conn.fetchrow(
        "with claimed as (insert into inbox (consumer, event_id) values ($1, $2)"
        "   on conflict do nothing returning true),"
        " created as (insert into workflows"
        "   (id, name, project, spec, state, reason, attempt, trace_id)"
        "   select $3, $4, $5, $6::jsonb, $7, $8, $9, $10 where exists (select from claimed)"
        "   on conflict (id) do nothing returning id),"
        " stored_steps as (insert into steps (workflow_id, position, name, needs, state, attempt)"
        "   select $3, e.position - 1, e.step->>'name',"
        "     array(select jsonb_array_elements_text(e.step->'needs')),"
        "     e.step->>'state', (e.step->>'attempt')::int"
        "   from jsonb_array_elements($11::jsonb) with ordinality as e(step, position)"
        "   where exists (select from created)),"
        " queued as (insert into outbox (id, subject, headers, body)"
        "   select $12, $13, $14::jsonb, $15 where exists (select from created))"
        " select exists (select from claimed) as claimed,"
        "   exists (select from created) as created",
        consumer, event_id,
        wf.id, spec.name, spec.project, msgspec.json.encode(spec).decode(), wf.state,
        wf.reason, wf.attempt, trace_id, msgspec.json.encode(steps).decode(),
        answer.id, answer.subject, json.dumps(answer.headers), answer.body,
    )  # fmt: skip
    assert row is not None
    return bool(row["claimed"]), bool(row["created"])


_WORKFLOW_FIELDS = "id, state, attempt, reason, pool, executor_id, started_at, finished_at"


async def claim_and_load(
    conn: Conn, consumer: str, event_id: str, workflow_id: str
) -> tuple[bool, Workflow | None]:
    """Record the event in the inbox and lock its workflow, in one round trip: (claimed,
    the workflow or None). Events of one workflow arrive on several consumers at once;
    the row lock makes each fold onto the state the previous one left."""
    row = await conn.fetchrow(
        "with claimed as (insert into inbox (consumer, event_id) values ($2, $3)"
        " on conflict do nothing returning true)"
        " select (select true from claimed) as claimed, w.*"
        " from (select id, state, attempt, reason, pool, executor_id, started_at, finished_at"
        " from workflows where id = $1 for update) w"
        " right join (select 1) one on true",
        workflow_id, consumer, event_id,
    )  # fmt: skip
    assert row is not None  # the right join always yields one row
    if not row["claimed"]:
        return False, None
    if row["id"] is None:
        return True, None
    return True, await _with_steps(conn, {k: row[k] for k in _WORKFLOW_FIELDS.split(", ")})


async def _with_steps(conn: Conn, workflow: dict[str, Any]) -> Workflow:
    steps = await conn.fetch(
        "select * from steps where workflow_id = $1 order by position", workflow["id"]
    )
    return Workflow(
        **workflow,
        steps=tuple(
            Step(name=s["name"], needs=tuple(s["needs"]), **{f: s[f] for f in _STEP_FIELDS})
            for s in steps
        ),
    )


async def save(conn: Conn, old: Workflow, new: Workflow) -> None:
    """Write what changed from ``old`` to ``new``, in one statement."""
    changed = [s for s, before in zip(new.steps, old.steps, strict=True) if s != before]
    columns = [[getattr(s, f) for s in changed] for f in ("name", *_STEP_FIELDS)]
    await conn.execute(
        "with wf as (update workflows set state = $2, attempt = $3, reason = $4, pool = $5,"
        " executor_id = $6, started_at = $7, finished_at = $8, updated_at = now()"
        " where id = $1)"
        " update steps set state = u.state, attempt = u.attempt, exit_code = u.exit_code,"
        " started_at = u.started_at, finished_at = u.finished_at, duration_s = u.duration_s,"
        " error = u.error, output_tail = u.output_tail"
        " from unnest($9::text[], $10::text[], $11::int[], $12::int[], $13::timestamptz[],"
        " $14::timestamptz[], $15::float8[], $16::text[], $17::text[])"
        " as u(name, state, attempt, exit_code, started_at, finished_at, duration_s, error,"
        " output_tail)"
        " where steps.workflow_id = $1 and steps.name = u.name",
        new.id, new.state, new.attempt, new.reason, new.pool, new.executor_id,
        new.started_at, new.finished_at, *columns,
    )  # fmt: skip


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
