"""Schedules over HTTP, through the gateway to a real task-manager: created, listed with
their next fire times, shown, paused, resumed and deleted; a task as the target; a
schedule that cannot run is a 422 problem saying why."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from aiop.servicekit.rpc import wait_ready
from aiop.task_manager.main import TaskManagerSettings, build

from .conftest import Env

pytestmark = pytest.mark.integration

NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
           "template": "ci-cd", "policy": "catch_up", "catch_up_limit": 3}  # fmt: skip


@pytest.fixture
async def tm(env: Env, nats_url: str, pg_url: str) -> AsyncIterator[Env]:
    """``env`` with a task-manager behind the gateway."""
    app = build(TaskManagerSettings(nats_url=nats_url, database_url=pg_url))
    task = asyncio.create_task(app.run())
    await wait_ready(env.nc, "task-manager", timeout=10)
    yield env
    app.exit()
    await task


async def test_a_schedule_is_created_listed_paused_resumed_and_deleted(tm: Env) -> None:
    http, auth = tm.client, tm.bearer()
    created = await http.post("/v1/schedules", json=NIGHTLY, headers=auth)
    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["template"], view["policy"], view["enabled"]) == ("ci-cd", "catch_up", True)
    assert view["next_at"].endswith(("T01:00:00Z", "T02:00:00Z"))  # 03:00 in Berlin
    listed = (await http.get("/v1/schedules", headers=auth)).json()
    assert [(s["name"], s["next_at"]) for s in listed["schedules"]] == [
        ("nightly", view["next_at"])
    ]
    paused = await http.post("/v1/schedules/nightly/pause", headers=auth)
    assert paused.status_code == 200
    assert paused.json()["enabled"] is False
    assert "next_at" not in paused.json()
    resumed = (await http.post("/v1/schedules/nightly/resume", headers=auth)).json()
    assert (resumed["enabled"], resumed["next_at"]) == (True, view["next_at"])
    shown = (await http.get("/v1/schedules/nightly", headers=auth)).json()
    assert (shown["name"], shown.get("ticks", [])) == ("nightly", [])  # none due yet
    deleted = await http.delete("/v1/schedules/nightly", headers=auth)
    assert deleted.status_code == 200
    gone = await http.get("/v1/schedules/nightly", headers=auth)
    assert gone.status_code == 404
    assert gone.json()["type"] == "urn:aiop:problem:not-found"


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"cron": "0 25 * * *"}, 422, "not a cron expression"),
        ({"timezone": "Europe/Atlantis"}, 422, "unknown timezone"),
        ({"template": "ghost"}, 422, "no template ghost"),
        ({"parameters": {"nope": 1}}, 422, "ci-cd@"),
        ({"policy": "sometimes"}, 422, "policy"),
        ({"catch_up_limit": 0}, 422, "catch_up_limit"),
    ],
)
async def test_a_schedule_that_cannot_run_is_a_422_problem(
    tm: Env, change: dict[str, object], status: int, says: str
) -> None:
    refused = await tm.client.post("/v1/schedules", json={**NIGHTLY, **change},
                                   headers=tm.bearer())  # fmt: skip
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert says in refused.json()["detail"]


async def test_a_name_taken_is_409_and_a_bad_name_400(tm: Env) -> None:
    http, auth = tm.client, tm.bearer()
    assert (await http.post("/v1/schedules", json=NIGHTLY, headers=auth)).status_code == 201
    again = await http.post("/v1/schedules", json=NIGHTLY, headers=auth)
    assert again.status_code == 409
    assert again.json()["type"] == "urn:aiop:problem:conflict"
    bad = await http.get("/v1/schedules/no.dots", headers=auth)
    assert bad.status_code == 400
    missing = await http.post("/v1/schedules", json={"name": "x", "cron": "* * * * *"},
                              headers=auth)  # fmt: skip
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["pointer"] == ""
    assert "template" in missing.json()["detail"]


async def test_a_schedule_of_a_task_is_created_and_a_bad_target_is_a_422(tm: Env) -> None:
    http, auth = tm.client, tm.bearer()
    task = {"template": "ci-cd"}
    assert (await http.put("/v1/projects/default/tasks/build", json=task, headers=auth)).is_success
    by_task = {k: v for k, v in NIGHTLY.items() if k != "template"} | {"task": "build"}
    created = await http.post("/v1/schedules", json=by_task, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["task"] == "build"
    assert "template" not in created.json()
    for body, says in [
        ({**by_task, "name": "ghost", "task": "ghost"}, "no task ghost in project default"),
        ({**NIGHTLY, "name": "both", "task": "build"}, "a template or a task"),
    ]:
        refused = await http.post("/v1/schedules", json=body, headers=auth)
        assert refused.status_code == 422, refused.text
        assert says in refused.json()["detail"]
