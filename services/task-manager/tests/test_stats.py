"""Run statistics in PostgreSQL: counts per state in the window, and per bucket how many
runs ended, how many failed and their latency percentiles; only the caller's projects."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from aiop.contracts.events import WorkflowAccepted, WorkflowSubmitted
from aiop.contracts.stats import StatsQuery
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.task_manager.adapters import store
from aiop.task_manager.adapters.db import open_pool
from aiop.task_manager.adapters.outbox import outbox_row
from aiop.task_manager.adapters.stats import run_stats
from aiop.task_manager.domain import new_workflow

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(pg_url, size=2)
    async with pool.acquire() as conn:
        await conn.execute("truncate workflows cascade")
    yield pool
    await pool.close()


async def add(
    pool: asyncpg.Pool, wf: str, project: str, at: float, state: str = "accepted",
    took_s: float | None = None, task: str | None = None,
) -> None:  # fmt: skip
    """A run submitted ``at`` seconds after T0, in ``state``, ended ``took_s`` later."""
    spec = WorkflowSpec(name="w", project=project, steps=[StepSpec(name="s", run=["true"])])
    submitted = WorkflowSubmitted(workflow_id=wf, spec=spec, principal="me", task=task)
    workflow, _ = new_workflow(submitted)
    answer = outbox_row(WorkflowAccepted(workflow_id=wf, spec=spec))
    created = T0 + timedelta(seconds=at)
    finished = None if took_s is None else created + timedelta(seconds=took_s)
    async with pool.acquire() as conn:
        await store.accept(conn, "test", submitted, workflow, None, answer)
        await conn.execute(
            "update workflows set created_at = $2, state = $3, finished_at = $4 where id = $1",
            wf, created, state, finished,
        )  # fmt: skip


async def stats(pool: asyncpg.Pool, **q: object):  # type: ignore[no-untyped-def]
    query = {"visible": ["a", "b"], "since": T0, "until": T0 + timedelta(seconds=180),
             "bucket_s": 60, **q}  # fmt: skip
    async with pool.acquire() as conn:
        return await run_stats(conn, StatsQuery(**query))  # type: ignore[arg-type]


async def test_counts_buckets_and_percentiles(pool: asyncpg.Pool) -> None:
    # Bucket 0 [0, 60): four runs end there, 1, 2, 3 and 4 s after their submission.
    for i, took in enumerate((1.0, 2.0, 3.0, 4.0)):
        await add(pool, f"ok-{i}", "a", 10 + i, "succeeded", took)
    # Bucket 1 [60, 120): one failed, one timed out, one cancelled.
    await add(pool, "bad", "a", 60, "failed", 10.0)
    await add(pool, "slow", "b", 61, "timed_out", 20.0)
    await add(pool, "stopped", "a", 62, "cancelled", 30.0)
    await add(pool, "busy", "a", 70, "running")  # counted, has not ended
    await add(pool, "later", "a", 200, "succeeded", 1.0)  # after the window
    await add(pool, "before", "a", -30, "succeeded", 40.0)  # submitted before, ended in it

    found = await stats(pool)

    assert found.counts == {"succeeded": 4, "failed": 1, "timed_out": 1, "cancelled": 1,
                            "running": 1}  # fmt: skip
    assert found.total == 8
    assert [b.at for b in found.series] == [T0 + timedelta(seconds=s) for s in (0, 60, 120)]
    first, second, third = found.series
    assert (first.finished, first.failed) == (5, 0)  # "before" ended at 10 s
    assert first.p50_ms == 3000.0  # 1, 2, 3, 4 and 40 s: the middle one
    assert first.p95_ms == pytest.approx(32800.0)  # interpolated between 4 s and 40 s
    assert (second.finished, second.failed) == (3, 2)
    assert second.p50_ms == 20000.0
    assert (third.finished, third.failed, third.p50_ms, third.p95_ms) == (0, 0, None, None)


async def test_only_visible_projects_and_filters_count(pool: asyncpg.Pool) -> None:
    await add(pool, "mine", "a", 5, "succeeded", 1.0, task="nightly")
    await add(pool, "theirs", "c", 5, "succeeded", 1.0)
    assert (await stats(pool)).counts == {"succeeded": 1}  # never project c's
    assert (await stats(pool, project="b")).total == 0
    assert (await stats(pool, task="nightly")).total == 1
    assert (await stats(pool, task="other")).series[0].finished == 0
    assert (await stats(pool, visible=["c"])).counts == {"succeeded": 1}


async def test_a_window_that_is_not_a_whole_number_of_buckets_ends_in_a_short_one(
    pool: asyncpg.Pool,
) -> None:
    await add(pool, "edge", "a", 0, "succeeded", 95.0)
    found = await stats(pool, until=T0 + timedelta(seconds=100))
    assert [b.finished for b in found.series] == [0, 1]
