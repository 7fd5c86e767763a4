"""Schedules against a real nats-server and PostgreSQL: managed through task-manager's
endpoints, fired on time with their origin, a task as the target, a template that cannot
render and an archived project recorded on the tick, missed ticks skipped or caught up,
and two replicas firing each tick once."""

import asyncio
import contextlib
import functools
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from aiop.contracts import WorkflowSubmitted, endpoints
from aiop.contracts.envelope import decode_event
from aiop.contracts.projects import NewProject, ProjectRef, SaveTask, TaskSpec
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.schedules import (
    ScheduleCreate,
    ScheduleEnabling,
    ScheduleIn,
    ScheduleListQuery,
    ScheduleRef,
    ScheduleView,
)
from aiop.contracts.subjects import KV_TEMPLATES
from aiop.contracts.templates import Template, template_key
from aiop.contracts.workflow import WorkflowSpec
from aiop.devstack import until
from aiop.servicekit import open_bucket, rpc
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager import scheduler
from aiop.task_manager.main import TaskManagerSettings, build
from aiop.task_manager.submissions import run_id

pytestmark = pytest.mark.integration

HELLO = Template(
    name="hello", version="1.0.0",
    parameters={"type": "object", "properties": {"who": {"type": "string", "default": "x"}}},
    workflow={"name": "hello", "steps": [{"name": "say", "run": ["echo", "${{ params.who }}"]}]},
)  # fmt: skip
SUBMITTED = "aiop.workflow.submitted.v1.>"


@contextlib.asynccontextmanager
async def task_manager(nats_url: str, pg_url: str) -> AsyncIterator[None]:
    app = build(TaskManagerSettings(nats_url=nats_url, database_url=pg_url,
                                    outbox_interval_s=0.05, outbox_grace_s=0.5))  # fmt: skip
    task = asyncio.create_task(app.run())
    try:
        yield
    finally:
        app.exit()
        await task


@pytest.fixture
async def nc(nats_url: str, pg_url: str) -> AsyncIterator[Client]:
    """A running task-manager, a client of its nats-server, and template hello@1.0.0."""
    async with task_manager(nats_url, pg_url):
        client = await nats.connect(nats_url)
        try:
            await rpc.wait_ready(client, "task-manager", timeout=10)
            await put_template(client, HELLO)
            yield client
        finally:
            await client.close()


async def put_template(nc: Client, template: Template) -> None:
    kv = await open_bucket(nc.jetstream(), KV_TEMPLATES)
    await kv.put(template_key(template.project, template.name, template.version),
                 msgspec.json.encode(template))  # fmt: skip


async def ask(nc: Client, endpoint: endpoints.Endpoint[Any, Any], request: Any) -> Any:
    reply = await rpc.request(nc, endpoint.subject, request, timeout=5)
    return msgspec.json.decode(reply, type=endpoint.reply)


async def create(
    nc: Client, name: str, cron: str = "* * * * * *", project: str = "p", **more: Any
) -> ScheduleView:
    if "task" not in more:
        more.setdefault("template", "hello")
    given = ScheduleIn(name=name, cron=cron, **more)
    ask_ = ScheduleCreate(project=project, principal="me", schedule=given)
    view: ScheduleView = await ask(nc, endpoints.CREATE_SCHEDULE, ask_)
    return view


async def show(nc: Client, name: str, project: str = "p") -> ScheduleView:
    ref = ScheduleRef(project=project, name=name)
    view: ScheduleView = await ask(nc, endpoints.GET_SCHEDULE, ref)
    return view


async def project_with_tasks(nc: Client, project: str, **tasks: TaskSpec) -> None:
    """Project ``project`` (made by "me") holding ``tasks``."""
    await ask(nc, endpoints.CREATE_PROJECT, NewProject(name=project, created_by="me"))
    for name, task in tasks.items():
        await ask(nc, endpoints.SAVE_TASK, SaveTask(project=project, name=name, task=task))


async def collect(nc: Client, into: list[WorkflowSubmitted]) -> Any:
    """Every WorkflowSubmitted published, as core NATS sees it: a second publish of the
    same event is seen here even where the stream would drop it as a duplicate."""

    async def on(msg: Msg) -> None:
        into.append(decode_event(msg.data, WorkflowSubmitted))

    return await nc.subscribe(SUBMITTED, cb=on)


async def test_a_schedule_starts_its_template_at_each_tick_with_its_origin(
    nc: Client, pg_url: str
) -> None:
    seen: list[WorkflowSubmitted] = []
    await collect(nc, seen)
    created = await create(nc, "every-second", parameters={"who": "${{ schedule.tick }}"})
    assert created.next_at is not None
    assert created.next_at > datetime.now(UTC) - timedelta(seconds=1)
    await until(lambda: len(seen) >= 2, what="two ticks fired")
    first = seen[0]
    assert first.origin is not None
    assert (first.origin.kind, first.origin.schedule) == ("schedule", "every-second")
    tick = first.origin.tick
    assert tick is not None
    assert tick.microsecond == 0
    assert first.template == "hello@1.0.0"
    assert first.parameters == {"who": tick.isoformat()}
    assert first.spec.project == "p"
    assert first.principal == "me"
    schedule_id = await scheduled_id(pg_url, "every-second")
    assert first.workflow_id == run_id("schedule", schedule_id, tick.isoformat())

    async def stored() -> WorkflowView | None:
        try:
            view = await ask(
                nc, endpoints.GET_WORKFLOW, WorkflowQuery(workflow_id=first.workflow_id)
            )
        except QueryFailed:
            return None
        return view if view.state == "accepted" else None

    view = await until(stored, what="the first tick's workflow stored")
    assert view.origin.kind == "schedule"
    assert view.origin.tick == tick
    shown = await until(lambda: _with_state(nc, "every-second"), what="a tick with its state")
    assert shown.ticks[0].tick > shown.ticks[-1].tick  # the latest first
    assert {t.workflow_id for t in shown.ticks} >= {first.workflow_id}


async def _with_state(nc: Client, name: str) -> ScheduleView | None:
    shown = await show(nc, name)
    return shown if any(t.state == "accepted" for t in shown.ticks) else None


async def sql(pg_url: str, query: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(pg_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def scheduled_id(pg_url: str, name: str) -> str:
    rows = await sql(pg_url, "select id from schedules where name = $1", name)
    return str(rows[0]["id"])


async def test_a_schedule_of_a_task_runs_it_with_its_parameters_updated(
    nc: Client, pg_url: str
) -> None:
    """The task's template at its exact version, the task's parameters with the
    schedule's over them, the task named on the run; a task of a workflow runs as it is
    and takes no parameters."""
    flow = {"name": "own", "steps": [{"name": "a", "run": ["true"]}]}
    await project_with_tasks(
        nc, "tasks",
        greet=TaskSpec(template="hello", parameters={"who": "task"}),
        own=TaskSpec(workflow=msgspec.convert(flow, WorkflowSpec)),
    )  # fmt: skip
    seen: list[WorkflowSubmitted] = []
    await collect(nc, seen)
    created = await create(nc, "greeting", project="tasks", task="greet",
                           parameters={"who": "${{ schedule.tick }}"})  # fmt: skip
    assert (created.task, created.template) == ("greet", None)
    await create(nc, "own", project="tasks", task="own")
    with pytest.raises(QueryFailed) as refused:
        await create(nc, "own-with", project="tasks", task="own", parameters={"x": 1})
    assert refused.value.code == 422
    assert "parameters apply to tasks of a template" in refused.value.description

    def by(name: str) -> list[WorkflowSubmitted]:
        return [s for s in seen if s.origin and s.origin.schedule == name]

    await until(lambda: by("greeting") and by("own"), what="a tick of each")
    first, own = by("greeting")[0], by("own")[0]
    assert first.origin is not None
    assert first.origin.tick is not None
    assert (first.task, first.template) == ("greet", "hello@1.0.0")
    assert first.parameters == {"who": first.origin.tick.isoformat()}
    assert first.spec.project == "tasks"
    assert (own.task, own.template, own.parameters, own.spec.name) == ("own", None, {}, "own")
    stored = await until(lambda: sql(pg_url, "select task, template from workflows where id = $1",
                                     first.workflow_id), what="the run stored")  # fmt: skip
    assert (stored[0]["task"], stored[0]["template"]) == ("greet", "hello@1.0.0")


async def test_a_schedule_of_an_archived_project_records_its_ticks_and_starts_nothing(
    nc: Client, pg_url: str
) -> None:
    await project_with_tasks(nc, "old", greet=TaskSpec(template="hello"))
    await create(nc, "by-task", project="old", task="greet")
    await create(nc, "by-template", project="old")
    await until(lambda: sql(pg_url, "select 1 from schedule_ticks t join schedules s"
                            " on s.id = t.schedule_id where s.project = 'old'"
                            " and t.workflow_id is not null group by s.id having count(*) > 0"),
                what="ticks that started runs")  # fmt: skip
    await ask(nc, endpoints.ARCHIVE_PROJECT, ProjectRef(name="old"))

    async def refused_twice(name: str) -> Any:
        ticks = (await show(nc, name, "old")).ticks
        return ticks if len([t for t in ticks if t.error]) >= 2 else None

    for name in ("by-task", "by-template"):
        ticks = await until(functools.partial(refused_twice, name), what=f"{name} refused")
        first = min(t.tick for t in ticks if t.error)
        after = [t for t in ticks if t.tick >= first]  # every tick since: nothing started
        assert {(t.workflow_id, t.error) for t in after} == {
            (None, "project old is archived: it starts nothing new")
        }
    with pytest.raises(QueryFailed) as closed:
        await create(nc, "new", project="old")
    assert closed.value.code == 422
    assert "archived" in closed.value.description


async def test_a_paused_schedule_fires_nothing_until_resumed(nc: Client) -> None:
    seen: list[WorkflowSubmitted] = []
    await collect(nc, seen)
    await create(nc, "paused")
    await until(lambda: seen, what="a tick of the schedule")
    paused = await ask(nc, endpoints.ENABLE_SCHEDULE,
                       ScheduleEnabling(project="p", name="paused", enabled=False))  # fmt: skip
    assert (paused.enabled, paused.next_at) == (False, None)
    fired = len((await show(nc, "paused")).ticks)
    # Another schedule firing twice shows the scheduler ran on while this one stayed paused.
    seen.clear()
    await create(nc, "witness")
    await until(lambda: len([s for s in seen if s.origin and s.origin.schedule == "witness"]) >= 2,
                what="two ticks of the witness")  # fmt: skip
    assert len((await show(nc, "paused")).ticks) == fired
    assert not [s for s in seen if s.origin and s.origin.schedule == "paused"]
    resumed = await ask(nc, endpoints.ENABLE_SCHEDULE,
                        ScheduleEnabling(project="p", name="paused", enabled=True))  # fmt: skip
    assert resumed.enabled
    assert resumed.next_at is not None
    await until(lambda: [s for s in seen if s.origin and s.origin.schedule == "paused"],
                what="a tick after resuming")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"cron": "61 * * * *"}, 422, "not a cron expression"),
        ({"timezone": "Mars/Olympus"}, 422, "unknown timezone"),
        ({"template": "ghost"}, 422, "no template ghost in project p"),
        ({"parameters": {"who": 3}}, 422, "hello@1.0.0"),
        ({"name": "taken"}, 409, "has a schedule taken already"),
        ({"template": None, "task": "ghost"}, 422, "no task ghost in project p"),
        ({"template": "hello", "task": "ghost"}, 422, "a template or a task: give exactly one"),
        ({"template": None}, 422, "a template or a task: give exactly one"),
    ],
)
async def test_a_schedule_that_cannot_run_is_refused(
    nc: Client, change: dict[str, Any], code: int, says: str
) -> None:
    await create(nc, "taken", "0 0 1 1 *")
    with pytest.raises(QueryFailed) as refused:
        await create(nc, **{"name": "new", "cron": "0 0 1 1 *", **change})
    assert refused.value.code == code
    assert says in refused.value.description


async def test_show_delete_and_pause_an_unknown_schedule_are_404(nc: Client) -> None:
    for endpoint, request in [
        (endpoints.GET_SCHEDULE, ScheduleRef(project="p", name="ghost")),
        (endpoints.DELETE_SCHEDULE, ScheduleRef(project="p", name="ghost")),
        (endpoints.ENABLE_SCHEDULE, ScheduleEnabling(project="p", name="ghost", enabled=False)),
    ]:
        with pytest.raises(QueryFailed) as missing:
            await ask(nc, endpoint, request)
        assert missing.value.code == 404
    await create(nc, "mine", "0 0 1 1 *")
    other = await ask(nc, endpoints.LIST_SCHEDULES, ScheduleListQuery(project="q"))
    assert other.schedules == []
    deleted = await ask(nc, endpoints.DELETE_SCHEDULE, ScheduleRef(project="p", name="mine"))
    assert deleted.name == "mine"
    assert (await ask(nc, endpoints.LIST_SCHEDULES, ScheduleListQuery(project="p"))).schedules == []


async def test_a_template_that_cannot_render_is_recorded_and_others_fire_on(
    nc: Client, pg_url: str
) -> None:
    await put_template(nc, msgspec.structs.replace(HELLO, name="doomed"))
    await create(nc, "doomed", template="doomed")
    await create(nc, "healthy")
    kv = await open_bucket(nc.jetstream(), KV_TEMPLATES)
    await kv.delete(template_key("_", "doomed", "1.0.0"))

    async def refused() -> Any:
        return [t for t in (await show(nc, "doomed")).ticks if t.error]

    failed = await until(refused, what="a tick that started nothing")
    assert failed[0].workflow_id is None
    assert failed[0].error == "no template doomed in project p"
    healthy = await until(lambda: _fired_after(nc, "healthy", failed[0].tick),
                          what="the healthy schedule firing on")  # fmt: skip
    assert all(t.error is None for t in healthy)


async def test_a_tick_held_back_while_nats_is_away_fires_late_not_never(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put_template(nc, msgspec.structs.replace(HELLO, name="flaky"))
    await create(nc, "flaky", template="flaky")
    await create(nc, "steady")
    real, failures = scheduler.rendered, Counter[str]()

    async def nats_away_for_flaky(kv: Any, project: str, ref: str, parameters: Any) -> Any:
        if ref == "flaky" and failures[ref] < 3:
            failures[ref] += 1
            raise nats.errors.TimeoutError
        return await real(kv, project, ref, parameters)

    monkeypatch.setattr(scheduler, "rendered", nats_away_for_flaky)
    fired = await until(lambda: _fired_after(nc, "flaky", datetime.min.replace(tzinfo=UTC)),
                        what="the flaky schedule's first run")  # fmt: skip
    assert failures["flaky"] == 3
    first = fired[-1]
    assert first.fired_at - first.tick >= timedelta(seconds=1)  # late: held back, not lost
    steady = await _fired_after(nc, "steady", datetime.min.replace(tzinfo=UTC))
    assert [t for t in steady if t.tick < first.fired_at]  # fired on while flaky waited


async def _fired_after(nc: Client, name: str, after: datetime) -> Any:
    return [t for t in (await show(nc, name)).ticks if t.tick > after and t.workflow_id]


async def test_ticks_missed_while_down_are_skipped_or_caught_up(nats_url: str, pg_url: str) -> None:
    """Hourly schedules, and a platform down for five hours: ``skip`` runs the latest
    missed tick, ``catch_up`` all of them up to its limit of three."""
    async with task_manager(nats_url, pg_url):
        client = await nats.connect(nats_url)
        await rpc.wait_ready(client, "task-manager", timeout=10)
        await put_template(client, HELLO)
        await create(client, "skipping", "0 * * * *", policy="skip")
        await create(client, "catching-up", "0 * * * *", policy="catch_up", catch_up_limit=3)
    # Down: the clock cannot be moved, so the schedules are moved back five hours.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await sql(pg_url, "update schedules set next_at = $1", hour - timedelta(hours=5))
    seen: list[WorkflowSubmitted] = []
    await collect(client, seen)
    async with task_manager(nats_url, pg_url):
        await until(lambda: _all_moved_on(pg_url), what="both schedules fired")
        await until(lambda: len(seen) >= 4, what="four runs submitted")
    await client.close()
    query = (
        "select s.name, array_agg(t.tick order by t.tick) as ticks"
        " from schedules s join schedule_ticks t on t.schedule_id = s.id group by s.name"
    )
    ticks = {r["name"]: r["ticks"] for r in await sql(pg_url, query)}
    assert ticks["skipping"] == [hour]
    assert ticks["catching-up"] == [hour - timedelta(hours=h) for h in (2, 1, 0)]
    by_schedule = Counter(s.origin.schedule for s in seen if s.origin)
    assert by_schedule == {"skipping": 1, "catching-up": 3}


async def _all_moved_on(pg_url: str) -> bool:
    rows = await sql(pg_url, "select count(*) as n from schedules where next_at <= now()")
    return rows[0]["n"] == 0


async def test_two_replicas_fire_each_tick_exactly_once(nats_url: str, pg_url: str) -> None:
    """Two task-manager replicas on one database and bus, ten every-second schedules:
    every tick starts one workflow, published once, and no tick is left out."""
    seen: list[WorkflowSubmitted] = []
    async with task_manager(nats_url, pg_url), task_manager(nats_url, pg_url):
        client = await nats.connect(nats_url)
        await rpc.wait_ready(client, "task-manager", timeout=10)
        await collect(client, seen)
        await put_template(client, HELLO)
        names = [f"s{i}" for i in range(10)]
        for name in names:
            await create(client, name)

        async def three_each() -> bool:
            rows = await sql(pg_url, "select count(distinct schedule_id) as n from schedule_ticks"
                             " group by schedule_id having count(*) >= 3")  # fmt: skip
            return len(rows) == len(names)

        await until(three_each, timeout_s=20, what="three ticks of every schedule")
        for name in names:
            await ask(client, endpoints.ENABLE_SCHEDULE,
                      ScheduleEnabling(project="p", name=name, enabled=False))  # fmt: skip
        ticks = await sql(pg_url, "select schedule_id, tick, workflow_id from schedule_ticks")

        async def all_stored() -> bool:
            ids = [t["workflow_id"] for t in ticks]
            rows = await sql(pg_url, "select count(*) as n from workflows where id = any($1)", ids)
            return bool(rows[0]["n"] == len(ids))

        await until(all_stored, what="every tick's workflow stored")
        await until(lambda: len(seen) >= len(ticks), what="every tick's run published")
        await client.close()
    per_tick = await sql(
        pg_url,
        "select origin->>'schedule' as schedule, origin->>'tick' as tick, count(*) as n"
        " from workflows group by 1, 2",
    )
    assert len(per_tick) == len(ticks)
    assert {r["n"] for r in per_tick} == {1}
    published = Counter(s.workflow_id for s in seen)
    assert set(published) == {t["workflow_id"] for t in ticks}
    assert set(published.values()) == {1}
    by_schedule: dict[str, list[datetime]] = {}
    for t in sorted(ticks, key=lambda t: t["tick"]):
        by_schedule.setdefault(t["schedule_id"], []).append(t["tick"])
    second = timedelta(seconds=1)
    for fired in by_schedule.values():  # consecutive seconds: no tick left out
        assert [b - a for a, b in itertools.pairwise(fired)] == [second] * (len(fired) - 1)
