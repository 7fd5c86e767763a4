"""POST /v1/events publishes a CloudEvent on ext.<source>.<type>, in binary or
structured mode, once per (project, source, id); what is no CloudEvent is a problem, never
a 500. With task-manager running: triggers over HTTP start workflows from events, and
another project's caller gets 404 for triggers and events."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.triggers import ext_msg_id, ext_subject
from aiop.devstack import until
from aiop.servicekit.rpc import wait_ready
from aiop.task_manager.main import TaskManagerSettings, build
from aiop.task_manager.submissions import run_id

from .conftest import Env, running

pytestmark = pytest.mark.integration

BINARY = {
    "ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "https://git.example/org/repo",
    "ce-type": "com.example.push", "content-type": "application/json",
}  # fmt: skip


async def stored(env: Env, subject: str) -> list[Any]:
    """Every message on ``subject`` in AIOP_EXT."""
    js = env.nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    info = await js.stream_info("AIOP_EXT", subjects_filter=subject)
    messages = [await sub.next_msg(timeout=5) for _ in range(info.state.subjects.get(subject, 0))]
    await sub.unsubscribe()
    return messages


async def test_binary_mode_is_published_on_its_subject_once(env: Env) -> None:
    reply = await env.client.post("/v1/events", content=b'{"ref": "main"}',
                                  headers={**env.bearer(), **BINARY})  # fmt: skip
    assert reply.status_code == 202, reply.text
    subject = ext_subject("https://git.example/org/repo", "com.example.push")
    assert reply.json() == {"id": "evt-1", "source": "https://git.example/org/repo",
                            "type": "com.example.push", "project": "default", "subject": subject}  # fmt: skip
    again = await env.client.post("/v1/events", content=b'{"ref": "main"}',
                                  headers={**env.bearer(), **BINARY})  # fmt: skip
    assert again.status_code == 202
    (msg,) = await stored(env, subject)  # the repeat was dropped by JetStream
    assert msg.headers["Nats-Msg-Id"] == ext_msg_id(
        "default", "https://git.example/org/repo", "evt-1"
    )
    body = json.loads(msg.data)
    assert body["data"] == {"ref": "main"}
    assert body["aiopproject"] == "default"
    assert body["specversion"] == "1.0"


async def test_structured_mode_takes_its_project_from_the_event(env: Env) -> None:
    event = {"specversion": "1.0", "id": "s-1", "source": "cron", "type": "tick",
             "aiopproject": "default", "data": [1, 2]}  # fmt: skip
    reply = await env.client.post(
        "/v1/events", content=json.dumps(event).encode(),
        headers={**env.bearer(), "content-type": "application/cloudevents+json"},
    )  # fmt: skip
    assert reply.status_code == 202, reply.text
    (msg,) = await stored(env, "ext.cron.tick")
    assert json.loads(msg.data)["data"] == [1, 2]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "text/plain"}, b"{}", 415),  # neither mode
        ({"content-type": "application/json"}, b"{}", 422),  # read as structured: no id
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", 415),
        ({"content-type": "application/cloudevents+json"}, b"{not json", 400),
        ({"content-type": "application/cloudevents+json"}, b'{"specversion": "1.0"}', 422),
        ({**BINARY, "ce-type": ""}, b"{}", 422),
        ({**BINARY, "ce-aiopproject": "elsewhere"}, b"{}", 422),  # not the query's project
        ({**BINARY, "ce-aiopproject": "no.dots"}, b"{}", 422),
        ({**BINARY, "ce-time": "soon"}, b"{}", 422),
        ({**BINARY, "content-length": "999999999"}, b"{}", 413),
    ],
)
async def test_what_is_no_cloudevent_is_a_problem(
    env: Env, headers: dict[str, str], body: bytes, status: int
) -> None:
    reply = await env.client.post("/v1/events?project=default", content=body,
                                  headers={**env.bearer(), **headers})  # fmt: skip
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert (await env.nc.jetstream().stream_info("AIOP_EXT")).state.messages == 0


@pytest.fixture
async def platform(nats_url: str, pg_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """Auth, the gateway and task-manager, with the built-in templates installed."""
    manager = build(TaskManagerSettings(nats_url=nats_url, database_url=pg_url,
                                        outbox_interval_s=0.05, outbox_grace_s=0.5))  # fmt: skip
    task = asyncio.create_task(manager.run())
    try:
        async with running(nats_url, tmp_path) as env:
            await wait_ready(env.nc, "task-manager", timeout=10)
            yield env
    finally:
        manager.exit()
        await task


TRIGGER = {
    "name": "on-push", "event_type": "com.example.*", "filter": {"ref": "main"},
    "target": {"template": "data-processing", "parameters": {"group_by": "${{ event.data.by }}"}},
}  # fmt: skip


async def test_a_trigger_made_over_http_starts_a_workflow(platform: Env) -> None:
    env = platform
    made = await env.client.post("/v1/triggers", json=TRIGGER, headers=env.bearer())
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == "dev"
    same = await env.client.post("/v1/triggers", json=TRIGGER, headers=env.bearer())
    assert same.status_code == 200
    listed = await env.client.get("/v1/triggers", headers=env.bearer())
    assert [t["name"] for t in listed.json()["triggers"]] == ["on-push"]
    bad = await env.client.post("/v1/triggers", headers=env.bearer(),
                                json={**TRIGGER, "name": "x y", "event_type": "a*b"})  # fmt: skip
    assert bad.status_code == 422
    assert len(bad.json()["errors"]) == 2

    sent = await env.client.post("/v1/events", content=b'{"ref": "main", "by": "product"}',
                                 headers={**env.bearer(), **BINARY})  # fmt: skip
    assert sent.status_code == 202, sent.text
    workflow_id = run_id("default", "on-push", BINARY["ce-source"], "evt-1")

    async def started() -> dict[str, Any] | None:
        reply = await env.client.get(f"/v1/workflows/{workflow_id}", headers=env.bearer())
        return reply.json() if reply.status_code == 200 else None

    view = await until(started, what="the triggered workflow")
    assert view["origin"] == {"kind": "trigger", "trigger": "on-push", "event_id": "evt-1",
                              "event_source": BINARY["ce-source"]}  # fmt: skip
    assert view["parameters"]["group_by"] == "product"
    events = (await env.client.get("/v1/events?matched=true", headers=env.bearer())).json()
    assert events["events"][0]["runs"] == [{"trigger": "on-push", "workflow_id": workflow_id}]
    deleted = await env.client.delete("/v1/triggers/on-push", headers=env.bearer())
    assert deleted.status_code == 200
    missing = await env.client.get("/v1/triggers/on-push", headers=env.bearer())
    assert missing.status_code == 404


async def test_another_projects_caller_gets_404(platform: Env) -> None:
    env = platform
    assert (await env.client.post("/v1/triggers", json=TRIGGER, headers=env.bearer())).is_success
    key = SigningKey.load_or_create(env.auth_dir)
    intruder = env.bearer(key.sign(token_claims("intruder", ["other"], datetime.now(UTC), 600)))
    for method, path, body in [
        ("GET", "/v1/triggers", None),
        ("GET", "/v1/triggers/on-push", None),
        ("DELETE", "/v1/triggers/on-push", None),
        ("POST", "/v1/triggers", TRIGGER),
        ("GET", "/v1/events", None),
    ]:
        reply = await env.client.request(method, f"{path}?project=default", json=body,
                                         headers=intruder)  # fmt: skip
        assert reply.status_code == 404, (method, path, reply.text)
    sent = await env.client.post("/v1/events?project=default", content=b"{}",
                                 headers={**intruder, **BINARY})  # fmt: skip
    assert sent.status_code == 404
    assert (await env.client.get("/v1/triggers/on-push", headers=env.bearer())).is_success


async def test_a_trigger_of_a_task_starts_the_task(platform: Env) -> None:
    env, auth = platform, platform.bearer()
    task = {"template": "data-processing", "parameters": {"group_by": "region"}}
    assert (await env.client.put("/v1/projects/default/tasks/report", json=task,
                                 headers=auth)).is_success  # fmt: skip
    by_task = {**TRIGGER, "target": {"task": "report",
                                     "parameters": {"group_by": "${{ event.data.by }}"}}}  # fmt: skip
    made = await env.client.post("/v1/triggers", json=by_task, headers=auth)
    assert made.status_code == 201, made.text
    for target, says in [
        ({"task": "ghost"}, "no task ghost in project default"),
        ({"task": "report", "template": "data-processing"}, "a template or a task"),
    ]:
        refused = await env.client.post("/v1/triggers", json={**TRIGGER, "target": target},
                                        headers=auth)  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert says in refused.json()["detail"]
    sent = await env.client.post("/v1/events", content=b'{"ref": "main", "by": "product"}',
                                 headers={**auth, **BINARY})  # fmt: skip
    assert sent.status_code == 202, sent.text
    workflow_id = run_id("default", "on-push", BINARY["ce-source"], "evt-1")

    async def started() -> dict[str, Any] | None:
        reply = await env.client.get(f"/v1/workflows/{workflow_id}", headers=auth)
        return reply.json() if reply.status_code == 200 else None

    view = await until(started, what="the task's workflow")
    assert view["task"] == "report"
    assert view["template"].startswith("data-processing@")
    assert view["parameters"]["group_by"] == "product"


async def test_a_type_filter_with_a_nul_is_refused_before_postgresql_sees_it(env: Env) -> None:
    reply = await env.client.get("/v1/events", params={"type": "a\x00b"}, headers=env.bearer())
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
