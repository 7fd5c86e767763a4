"""The run history in PostgreSQL: filters, what started each run, and pages that neither
skip nor repeat a run, even among runs created in the same instant."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from aiop.contracts.events import Origin, WorkflowAccepted, WorkflowSubmitted
from aiop.contracts.queries import WorkflowListQuery
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.task_manager.adapters import store
from aiop.task_manager.adapters.db import open_pool
from aiop.task_manager.adapters.outbox import outbox_row
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


async def add(pool: asyncpg.Pool, wf: str, project: str, at: datetime, **given: object) -> None:
    labels = given.pop("labels", {})
    spec = WorkflowSpec(name="w", project=project, labels=labels,  # type: ignore[arg-type]
                        steps=[StepSpec(name="s", run=["true"])])  # fmt: skip
    submitted = WorkflowSubmitted(workflow_id=wf, spec=spec, principal="me", **given)  # type: ignore[arg-type]
    workflow, _ = new_workflow(submitted)
    answer = outbox_row(WorkflowAccepted(workflow_id=wf, spec=spec))
    async with pool.acquire() as conn:
        await store.accept(conn, "test", submitted, workflow, None, answer)
        await conn.execute("update workflows set created_at = $2 where id = $1", wf, at)


async def page(pool: asyncpg.Pool, **q: object) -> tuple[list[str], str | None]:
    async with pool.acquire() as conn:
        found = await store.listing(conn, WorkflowListQuery(visible=["a", "b"], **q))  # type: ignore[arg-type]
    return [w.workflow_id for w in found.workflows], found.next_cursor


async def test_pages_walk_runs_newest_first_without_gaps_or_repeats(pool: asyncpg.Pool) -> None:
    for i in range(7):  # three share one instant: the id orders them
        await add(pool, f"wf-{i}", "a", T0 + timedelta(seconds=min(i, 3)))
    walked, cursor = [], None
    while True:
        ids, cursor = await page(pool, limit=2, cursor=cursor)
        walked += ids
        if cursor is None:
            break
    assert walked == ["wf-6", "wf-5", "wf-4", "wf-3", "wf-2", "wf-1", "wf-0"]


async def test_filters_and_visibility(pool: asyncpg.Pool) -> None:
    await add(pool, "mine", "a", T0, labels={"env": "prod"}, template="t@1", task="nightly",
              origin=Origin(kind="schedule", schedule="nightly", tick=T0))  # fmt: skip
    await add(pool, "other", "b", T0 + timedelta(seconds=1), template="t@2")
    await add(pool, "hidden", "c", T0 + timedelta(seconds=2))
    assert (await page(pool))[0] == ["other", "mine"]  # never project c's
    assert (await page(pool, project="a"))[0] == ["mine"]
    assert (await page(pool, template="t"))[0] == ["other", "mine"]
    assert (await page(pool, template="t@1"))[0] == ["mine"]
    assert (await page(pool, labels={"env": "prod"}))[0] == ["mine"]
    assert (await page(pool, labels={"env": "dev"}))[0] == []
    assert (await page(pool, task="nightly"))[0] == ["mine"]
    assert (await page(pool, states=["accepted"]))[0] == ["other", "mine"]
    assert (await page(pool, states=["failed"]))[0] == []
    assert (await page(pool, since=T0 + timedelta(seconds=1)))[0] == ["other"]
    assert (await page(pool, until=T0 + timedelta(seconds=1)))[0] == ["mine"]
    async with pool.acquire() as conn:
        listed = await store.listing(conn, WorkflowListQuery(visible=["a"]))
        view = await store.view(conn, "mine")
    assert listed.workflows[0].origin == Origin(kind="schedule", schedule="nightly", tick=T0)
    assert view is not None
    assert view.origin.schedule == "nightly"
    assert view.labels == {"env": "prod"}


async def test_a_cursor_not_handed_out_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(store.BadCursor):
        await page(pool, cursor="bm90IGEgY3Vyc29y")


async def test_search_finds_a_run_by_its_id_or_part_of_its_name(pool: asyncpg.Pool) -> None:
    await add(pool, "wf-build", "a", T0)
    await add(pool, "wf-other", "a", T0 + timedelta(seconds=1))
    async with pool.acquire() as conn:
        await conn.execute("update workflows set name = 'Nightly-Build' where id = 'wf-build'")
    assert (await page(pool, search="wf-other"))[0] == ["wf-other"]
    assert (await page(pool, search="nightly"))[0] == ["wf-build"]
    assert (await page(pool, search="wf-"))[0] == []  # an id matches whole, names in part
    assert (await page(pool, search="nightly", project="b"))[0] == []
