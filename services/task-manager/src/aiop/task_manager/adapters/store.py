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
    "output_tail", "closed_by_workflow", "tries", "runner", "summary",
)  # fmt: skip


async def accept(
    conn: Conn,
    consumer: str,
    event_id: str,
    wf: Workflow,
    spec: WorkflowSpec,
    trace_id: str | None,
    answer: OutboxRow,
    template: str | None = None,
    parameters: dict[str, Any] | None = None,
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
        "   (id, name, project, spec, state, reason, attempt, trace_id, template, parameters)"
        "   select $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $16, $17::jsonb"
        "   where exists (select from claimed)"
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
        template, json.dumps(parameters) if template else None,
    )  # fmt: skip
    assert row is not None
    return bool(row["claimed"]), bool(row["created"])


_WORKFLOW_FIELDS = ("id", "state", "attempt", "reason", "pool", "executor_id", "started_at", "finished_at")  # fmt: skip


async def claim_and_lock(
    conn: Conn, consumer: str, event_ids: list[str], workflow_ids: list[str]
) -> tuple[set[str], dict[str, Workflow]]:
    """In one round trip: record ``event_ids`` in the inbox, and lock the stored workflows
    among ``workflow_ids`` for this transaction and load them with their steps. Returns
    the event ids not seen before (to handle now) and the workflows by id.

    Rows are locked in id order, so two batches sharing workflows wait for each other
    instead of deadlocking; each folds onto what the other left."""
    rows = await conn.fetch(
        "with claimed as (insert into inbox (consumer, event_id) select $1, unnest($2::text[])"
        "   on conflict do nothing returning event_id),"
        " locked as (select id, state, attempt, reason, pool, executor_id, started_at,"
        "   finished_at from workflows where id = any($3::text[]) order by id for update)"
        " select (select array_agg(event_id) from claimed) as claimed, l.*,"
        "   array(select s from steps s where s.workflow_id = l.id order by s.position)"
        "     as steps"
        " from locked l right join (select 1) one on true",
        consumer, event_ids, workflow_ids,
    )  # fmt: skip
    claimed = set(rows[0]["claimed"] or ())  # the right join always yields a row
    workflows = {
        r["id"]: Workflow(
            **{f: r[f] for f in _WORKFLOW_FIELDS},
            steps=tuple(
                Step(name=s["name"], needs=tuple(s["needs"]), **{f: s[f] for f in _STEP_FIELDS})
                for s in r["steps"]
            ),
        )
        for r in rows
        if r["id"] is not None
    }
    return claimed, workflows


async def save(conn: Conn, changes: list[tuple[Workflow, Workflow]]) -> None:
    """Write what changed from old to new for each (old, new) pair, in one statement."""
    wfs = [new for _, new in changes]
    steps = [
        (new.id, s)
        for old, new in changes
        for s, before in zip(new.steps, old.steps, strict=True)
        if s != before
    ]
    wf_columns = [[getattr(w, f) for w in wfs] for f in _WORKFLOW_FIELDS]
    step_columns = [[wid for wid, _ in steps]] + [
        [getattr(s, f) for _, s in steps] for f in ("name", *_STEP_FIELDS)
    ]
    await conn.execute(
        "with wf as (update workflows w set state = u.state, attempt = u.attempt,"
        " reason = u.reason, pool = u.pool, executor_id = u.executor_id,"
        " started_at = u.started_at, finished_at = u.finished_at, updated_at = now()"
        " from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[],"
        " $7::timestamptz[], $8::timestamptz[])"
        " as u(id, state, attempt, reason, pool, executor_id, started_at, finished_at)"
        " where w.id = u.id)"
        " update steps set state = u.state, attempt = u.attempt, exit_code = u.exit_code,"
        " started_at = u.started_at, finished_at = u.finished_at, duration_s = u.duration_s,"
        " error = u.error, output_tail = u.output_tail,"
        " closed_by_workflow = u.closed_by_workflow, tries = u.tries, runner = u.runner,"
        " summary = u.summary::jsonb"
        " from unnest($9::text[], $10::text[], $11::text[], $12::int[], $13::int[],"
        " $14::timestamptz[], $15::timestamptz[], $16::float8[], $17::text[], $18::text[],"
        " $19::bool[], $20::int[], $21::text[], $22::text[])"
        " as u(workflow_id, name, state, attempt, exit_code, started_at, finished_at,"
        " duration_s, error, output_tail, closed_by_workflow, tries, runner, summary)"
        " where steps.workflow_id = u.workflow_id and steps.name = u.name",
        *wf_columns, *step_columns,
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
        template=row["template"], parameters=_json(row["parameters"]),
        summary={s["name"]: _json(s["summary"]) for s in steps if s["summary"] is not None},
    )  # fmt: skip


def _step_view(s: Any) -> StepView:
    return StepView(
        name=s["name"], state=s["state"], needs=list(s["needs"]), attempt=s["attempt"],
        exit_code=s["exit_code"], started_at=s["started_at"], finished_at=s["finished_at"],
        duration_s=s["duration_s"], error=s["error"], output_tail=s["output_tail"],
        tries=s["tries"], runner=s["runner"], summary=_json(s["summary"]),
    )  # fmt: skip


def _json(value: str | None) -> Any:
    """A jsonb column as asyncpg gives it (text), decoded; {} for NULL."""
    return json.loads(value) if value is not None else {}
