"""Folding a whole fetch in one transaction, against real NATS messages and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.msg import Msg
from opentelemetry.trace import INVALID_SPAN

from aiop.contracts import (
    StepCompleted,
    StepFailed,
    StepSpec,
    StepStarted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
    WorkflowSpec,
    WorkflowStarted,
    WorkflowSubmitted,
)
from aiop.contracts.envelope import UndecodableEvent, decode_event, encode_event, event_type_of
from aiop.contracts.events import Event, WorkflowAccepted, WorkflowEvent
from aiop.servicekit import Delivery, EventBus
from aiop.servicekit.streams import ensure_streams
from aiop.task_manager.adapters import store
from aiop.task_manager.adapters.db import open_pool
from aiop.task_manager.adapters.outbox import outbox_row
from aiop.task_manager.domain import new_workflow
from aiop.task_manager.handlers import Handlers

pytestmark = pytest.mark.integration

SPEC = WorkflowSpec(
    name="build",
    steps=[StepSpec(name="lint", run=["ruff"]), StepSpec(name="test", run=["pytest"])],
)
CONSUMER = "task-manager-events"


def run_of(wf: str) -> list[Event]:
    return [
        WorkflowRequested(workflow_id=wf, spec=SPEC, pool="default"),
        WorkflowStarted(workflow_id=wf, executor_id="ex1"),
        StepStarted(workflow_id=wf, step="lint"),
        StepStarted(workflow_id=wf, step="test"),
        StepCompleted(workflow_id=wf, step="lint", duration_s=0.5),
        StepCompleted(workflow_id=wf, step="test", exit_code=0, duration_s=1.0),
        WorkflowCompleted(workflow_id=wf, executor_id="ex1", duration_s=2.0),
    ]


@pytest.fixture
async def handlers(pg_url: str) -> AsyncIterator[Handlers]:
    h = Handlers(pg_url, EventBus("test", lambda: None, ()), 1.0, 1.0)  # type: ignore[arg-type,return-value]
    h.pool = await open_pool(pg_url, size=4)
    async with h.pool.acquire() as conn:
        for wf in ("wf-a", "wf-b"):
            submitted = WorkflowSubmitted(workflow_id=wf, spec=SPEC, principal="me")
            workflow, _ = new_workflow(submitted)
            answer = outbox_row(WorkflowAccepted(workflow_id=wf, spec=SPEC))
            await store.accept(conn, "setup", submitted, workflow, None, answer)
    yield h
    await h.pool.close()


async def fetched(nats_url: str, raw: list[tuple[str, bytes, dict[str, str]]]) -> list[Msg]:
    """Publish ``raw`` to AIOP and fetch it back through a durable consumer."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    for subject, body, headers in raw:
        await js.publish(subject, body, headers=headers, stream="AIOP")
    sub = await js.pull_subscribe("aiop.>", CONSUMER, stream="AIOP")
    msgs = await sub.fetch(len(raw), timeout=5)
    assert len(msgs) == len(raw)
    return msgs


def encoded(event: Event, msg_id: str | None = None) -> tuple[str, bytes, dict[str, str]]:
    env = encode_event(event, "test")
    return env.subject, env.body, {**env.headers, "Nats-Msg-Id": msg_id or event.event_id}


def batch_of(msgs: list[Msg]) -> list[Delivery[WorkflowEvent]]:
    """The deliveries the consumer hands over: what it could decode, in order (what it
    cannot decode it dead-letters itself)."""
    batch = []
    for m in msgs:
        kind = event_type_of(m.subject, dict(m.headers or {}))
        try:
            assert kind is not None
            batch.append(Delivery(m, decode_event(m.data, kind), INVALID_SPAN))
        except UndecodableEvent:
            continue
    return batch  # type: ignore[return-value]


async def test_two_interleaved_runs_fold_in_one_batch(nats_url: str, handlers: Handlers) -> None:
    a, b = run_of("wf-a"), run_of("wf-b")
    raw = [encoded(e) for pair in zip(a, b, strict=True) for e in pair]
    raw.insert(3, encoded(a[1], msg_id="again"))  # the same event once more: no second effect
    raw.insert(5, ("aiop.workflow.started.v1.wf-a", b"{not json", {}))
    raw.append(encoded(StepStarted(workflow_id="wf-ghost", step="lint")))
    msgs = await fetched(nats_url, raw)

    outcomes = await handlers.on_event(batch_of(msgs))

    assert outcomes == [None] * (len(raw) - 1)  # all but the undecodable one
    async with handlers.pool.acquire() as conn:
        views = [await store.view(conn, wf) for wf in ("wf-a", "wf-b")]
        claimed = await conn.fetchval("select count(*) from inbox where consumer = $1", CONSUMER)
    for view in views:
        assert view is not None
        assert (view.state, view.attempt, view.executor_id) == ("succeeded", 1, "ex1")
        assert [(s.state, s.exit_code, s.duration_s) for s in view.steps] == [
            ("succeeded", 0, 0.5), ("succeeded", 0, 1.0),
        ]  # fmt: skip
    assert claimed == len(a) + len(b) + 1  # the ghost's event is claimed, the copy is not

    # Redelivered whole: every event is already in the inbox, nothing changes.
    again = await handlers.on_event(batch_of(msgs))
    assert [type(o) for o in again] == [type(o) for o in outcomes]
    async with handlers.pool.acquire() as conn:
        assert [await store.view(conn, wf) for wf in ("wf-a", "wf-b")] == views


async def test_batches_sharing_workflows_do_not_deadlock(nats_url: str, handlers: Handlers) -> None:
    a, b = run_of("wf-a"), run_of("wf-b")
    msgs = await fetched(nats_url, [encoded(e) for e in (*a[:3], *b[:3], *b[3:], *a[3:])])
    # Each batch holds both workflows, met in opposite orders; both commit.
    first, second = batch_of(msgs[:6]), batch_of(msgs[6:])
    for _ in range(5):
        results = await asyncio.gather(
            handlers.on_event(first), handlers.on_event(second), return_exceptions=True
        )
        assert all(r == [None] * 6 or r == [None] * 8 for r in results), results
        async with handlers.pool.acquire() as conn:
            await conn.execute("delete from inbox where consumer = $1", CONSUMER)
    async with handlers.pool.acquire() as conn:
        states = await conn.fetch("select state from workflows order by id")
    assert [r["state"] for r in states] == ["succeeded", "succeeded"]


async def test_a_closed_out_step_is_stored_and_its_late_end_replaces_it(
    nats_url: str, handlers: Handlers
) -> None:
    wf = "wf-a"
    ended = [
        *run_of(wf)[:3],  # requested, started, lint started
        WorkflowFailed(workflow_id=wf, executor_id="ex1", reason="executor error: boom"),
    ]
    late = StepFailed(workflow_id=wf, step="lint", exit_code=1, error="exit 1", duration_s=0.5)
    msgs = await fetched(nats_url, [encoded(e) for e in (*ended, late)])

    async def steps() -> list[tuple[str, int | None, bool]]:
        async with handlers.pool.acquire() as conn:
            rows = await conn.fetch(
                "select state, exit_code, closed_by_workflow from steps"
                " where workflow_id = $1 order by position",
                wf,
            )
        return [(r["state"], r["exit_code"], r["closed_by_workflow"]) for r in rows]

    # Separate batches: the second folds onto what the first stored.
    assert await handlers.on_event(batch_of(msgs[:-1])) == [None] * len(ended)
    assert await steps() == [("cancelled", None, True), ("skipped", None, True)]
    assert await handlers.on_event(batch_of(msgs[-1:])) == [None]
    assert await steps() == [("failed", 1, False), ("skipped", None, True)]
