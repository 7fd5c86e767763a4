"""Workflows, steps and the inbox in PostgreSQL. Every function runs on the caller's
connection, so the caller decides the transaction (effect + inbox row together)."""

import base64
import json
from datetime import datetime
from typing import Any

import msgspec

from aiop.contracts.events import Origin, WorkflowSubmitted
from aiop.contracts.queries import (
    PruneRequest,
    RunSource,
    StepView,
    WorkflowListItem,
    WorkflowListQuery,
    WorkflowPage,
    WorkflowView,
)
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.contracts.workflow import WorkflowSpec
from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters.outbox import OutboxRow
from aiop.task_manager.domain import Step, Workflow

_STEP_FIELDS = (
    "state", "attempt", "exit_code", "started_at", "finished_at", "duration_s", "error",
    "output_tail", "closed_by_workflow", "tries", "runner", "summary", "entry_key",
)  # fmt: skip


async def accept(
    conn: Conn,
    consumer: str,
    submitted: WorkflowSubmitted,
    wf: Workflow,
    trace_id: str | None,
    answer: OutboxRow,
) -> tuple[bool, bool]:
    """Claim the submission, store the workflow with its steps, what started it, and
    queue ``answer`` in the outbox: one statement, so one round trip and atomic without
    BEGIN/COMMIT.

    Returns (claimed, created): not claimed is a redelivery; claimed but not created
    means the workflow id was already taken, and nothing but the inbox row was written.
    """
    spec, origin = submitted.spec, submitted.origin or Origin(kind="api")
    steps = [
        {"name": s.name, "needs": list(s.needs), "state": s.state, "attempt": s.attempt}
        for s in wf.steps
    ]
    row = await conn.fetchrow(
        "with claimed as (insert into inbox (consumer, event_id) values ($1, $2)"
        "   on conflict do nothing returning true),"
        " created as (insert into workflows"
        "   (id, name, project, spec, state, reason, attempt, trace_id, template, parameters,"
        "    origin, task, body_digest, rerun_of)"
        "   select $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $16, $17::jsonb, $18::jsonb, $19,"
        "    $20, $21"
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
        consumer, submitted.event_id,
        wf.id, spec.name, spec.project, msgspec.json.encode(spec).decode(), wf.state,
        wf.reason, wf.attempt, trace_id, msgspec.json.encode(steps).decode(),
        answer.id, answer.subject, json.dumps(answer.headers), answer.body,
        submitted.template,
        json.dumps(submitted.parameters) if submitted.template else None,
        msgspec.json.encode(origin).decode(), submitted.task, submitted.body_digest,
        origin.rerun_of,
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
        " summary = u.summary::jsonb, entry_key = u.entry_key"
        " from unnest($9::text[], $10::text[], $11::text[], $12::int[], $13::int[],"
        " $14::timestamptz[], $15::timestamptz[], $16::float8[], $17::text[], $18::text[],"
        " $19::bool[], $20::int[], $21::text[], $22::text[], $23::text[])"
        " as u(workflow_id, name, state, attempt, exit_code, started_at, finished_at,"
        " duration_s, error, output_tail, closed_by_workflow, tries, runner, summary,"
        " entry_key)"
        " where steps.workflow_id = u.workflow_id and steps.name = u.name",
        *wf_columns, *step_columns,
    )  # fmt: skip


async def view(conn: Conn, workflow_id: str) -> WorkflowView | None:
    row = await conn.fetchrow(
        "select *, spec->'labels' as spec_labels from workflows where id = $1", workflow_id
    )
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
        origin=origin_of(row["origin"]), task=row["task"], labels=_json(row["spec_labels"]),
        body_digest=row["body_digest"],
    )  # fmt: skip


def _step_view(s: Any) -> StepView:
    return StepView(
        name=s["name"], state=s["state"], needs=list(s["needs"]), attempt=s["attempt"],
        exit_code=s["exit_code"], started_at=s["started_at"], finished_at=s["finished_at"],
        duration_s=s["duration_s"], error=s["error"], output_tail=s["output_tail"],
        tries=s["tries"], runner=s["runner"], summary=_json(s["summary"]),
        entry_key=s["entry_key"],
    )  # fmt: skip


_origin = msgspec.json.Decoder(Origin)


def origin_of(value: str | None) -> Origin:
    """The stored origin; a run stored before origins were kept came over the API."""
    return _origin.decode(value) if value is not None else Origin(kind="api")


def _json(value: str | None) -> Any:
    """A jsonb column as asyncpg gives it (text), decoded; {} for NULL."""
    return json.loads(value) if value is not None else {}


MAX_PAGE = 500


class BadCursor(ValueError):
    """A cursor this service did not hand out."""


async def listing(conn: Conn, q: WorkflowListQuery) -> WorkflowPage:
    """One page of runs matching ``q``, newest first; ties broken by id, so that paging
    through runs created in the same instant neither skips nor repeats one."""
    after = _cursor_position(q.cursor) if q.cursor else None
    template_name, _, template_version = (q.template or "").partition("@")
    limit = max(1, min(q.limit, MAX_PAGE))
    rows = await conn.fetch(
        "select id, name, project, state, created_at, started_at, finished_at, reason,"
        "  template, task, origin, spec->'labels' as labels"
        " from workflows"
        " where project = any($1::text[])"
        "  and ($2::text is null or project = $2)"
        "  and ($3::text is null or task = $3)"
        "  and (cardinality($4::text[]) = 0 or state = any($4::text[]))"
        "  and ($5 = '' or template = $5 || '@' || $6 or ($6 = '' and template like $5 || '@%'))"
        "  and ($7::jsonb = '{}'::jsonb or spec->'labels' @> $7::jsonb)"
        "  and ($8::timestamptz is null or created_at >= $8)"
        "  and ($9::timestamptz is null or created_at < $9)"
        "  and ($10::timestamptz is null or (created_at, id) < ($10, $11))"
        "  and ($13::text is null or id = $13 or strpos(lower(name), lower($13)) > 0)"
        " order by created_at desc, id desc limit $12",
        q.visible, q.project, q.task, q.states, template_name, template_version,
        json.dumps(q.labels), q.since, q.until,
        after[0] if after else None, after[1] if after else "", limit + 1, q.search,
    )  # fmt: skip
    items = [_list_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    return WorkflowPage(
        workflows=items, next_cursor=_cursor(rows[limit - 1]) if more and items else None
    )


def _list_item(r: Any) -> WorkflowListItem:
    return WorkflowListItem(
        workflow_id=r["id"], name=r["name"], project=r["project"], state=r["state"],
        created_at=r["created_at"], origin=origin_of(r["origin"]), task=r["task"],
        template=r["template"], labels=_json(r["labels"]), started_at=r["started_at"],
        finished_at=r["finished_at"], reason=r["reason"],
    )  # fmt: skip


def _cursor(row: Any) -> str:
    """Where the next page starts: after this run (its creation time and id)."""
    position = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _cursor_position(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, workflow_id = text.split("|", 1)
        return datetime.fromisoformat(at), workflow_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this listing handed out") from exc


_spec = msgspec.json.Decoder(WorkflowSpec)


async def source(conn: Conn, workflow_id: str) -> RunSource | None:
    row = await conn.fetchrow(
        "select project, spec, template, parameters, task from workflows where id = $1",
        workflow_id,
    )
    if row is None:
        return None
    return RunSource(
        workflow_id=workflow_id, project=row["project"], spec=_spec.decode(row["spec"]),
        template=row["template"], parameters=_json(row["parameters"]), task=row["task"],
    )  # fmt: skip


_PRUNE = (
    "delete from workflows where state = any($3::text[]) and finished_at < $2"
    " and project = any($1::text[]) returning id"
)
_DRY_PRUNE = (
    "select id from workflows where state = any($3::text[]) and finished_at < $2"
    " and project = any($1::text[])"
)


async def prune(conn: Conn, ask: PruneRequest) -> list[str]:
    """Remove (or, dry, name) the ended runs of ``ask.projects`` that finished before
    ``ask.before``; their steps go with them. Runs still going are never removed."""
    query = _DRY_PRUNE if ask.dry_run else _PRUNE
    rows = await conn.fetch(query, ask.projects, ask.before, sorted(TERMINAL_WORKFLOW_STATES))
    return sorted(r["id"] for r in rows)
