"""External events and triggers against a real nats-server and PostgreSQL: a CloudEvent
published straight on ``ext.>`` starts its trigger's template with the event as origin,
once however often it comes; a task of the project as the target; an event no trigger
takes is kept; a trigger whose template cannot render, or whose project is archived,
says so on the event; what is no CloudEvent is dead-lettered."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client

from aiop.contracts import endpoints
from aiop.contracts.events import DeadLetterRecorded
from aiop.contracts.projects import NewProject, ProjectRef, SaveTask, TaskSpec
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.subjects import KV_TEMPLATES
from aiop.contracts.templates import Template, template_key
from aiop.contracts.triggers import (
    EventPage,
    EventRecord,
    EventsQuery,
    Trigger,
    TriggerRef,
    TriggerRun,
    TriggersQuery,
    TriggerTarget,
    ext_subject,
)
from aiop.devstack import until
from aiop.servicekit import open_bucket, rpc
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.main import TaskManagerSettings, build
from aiop.task_manager.submissions import run_id

pytestmark = pytest.mark.integration

GREET = Template(
    name="greet", version="1.0.0", project="team",
    parameters={"type": "object", "properties": {
        "who": {"type": "string"}, "times": {"type": "integer", "default": 1}}},
    workflow={"name": "greet", "steps": [{"name": "say", "run": ["echo", "${{ params.who }}"]}]},
)  # fmt: skip
ON_PUSH = Trigger(
    name="on-push", project="team", event_type="com.example.push", filter={"ref": "main"},
    target=TriggerTarget(template="greet", parameters={
        "who": "${{ event.data.author }} at ${{ event.source }}", "times": "${{ event.data.n }}"}),
    created_by="alice",
)  # fmt: skip


@pytest.fixture
async def nc(nats_url: str, pg_url: str) -> AsyncIterator[Client]:
    """A running task-manager with template greet@1.0.0 and trigger on-push in project
    team, and a client of its nats-server."""
    settings = TaskManagerSettings(nats_url=nats_url, database_url=pg_url,
                                   outbox_interval_s=0.05, outbox_grace_s=0.5)  # fmt: skip
    app = build(settings)
    task = asyncio.create_task(app.run())
    client = await nats.connect(nats_url)
    try:
        await rpc.wait_ready(client, "task-manager", timeout=10)
        kv = await open_bucket(client.jetstream(), KV_TEMPLATES)
        await kv.put(template_key("team", "greet", "1.0.0"), msgspec.json.encode(GREET))
        await ask(client, endpoints.SAVE_TRIGGER, ON_PUSH)
        yield client
    finally:
        app.exit()
        await task
        await client.close()


async def ask(nc: Client, endpoint: endpoints.Endpoint[Any, Any], request: Any) -> Any:
    reply = await rpc.request(nc, endpoint.subject, request, timeout=5)
    return msgspec.json.decode(reply, type=endpoint.reply)


async def publish(nc: Client, event: dict[str, Any], msg_id: str | None = None) -> None:
    """As a system outside would: the structured JSON format, straight on ext.>."""
    headers = {"content-type": "application/cloudevents+json"}
    if msg_id:
        headers["Nats-Msg-Id"] = msg_id
    subject = ext_subject(event["source"], event["type"])
    await nc.jetstream().publish(subject, json.dumps(event).encode(), headers=headers)


def push(event_id: str, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "git.example/repo",
            "type": "com.example.push", "aiopproject": "team",
            "data": {"ref": "main", "author": "bob", "n": 2, **data}}  # fmt: skip


async def recorded(nc: Client, event_id: str, **query: Any) -> EventRecord | None:
    page: EventPage = await ask(nc, endpoints.LIST_EVENTS, EventsQuery(project="team", **query))
    return next((e for e in page.events if e.id == event_id), None)


async def workflow(nc: Client, workflow_id: str) -> WorkflowView | None:
    try:
        reply = await rpc.request(nc, endpoints.GET_WORKFLOW.subject,
                                  WorkflowQuery(workflow_id=workflow_id))  # fmt: skip
    except QueryFailed:
        return None
    return msgspec.json.decode(reply, type=WorkflowView)


async def test_an_event_on_nats_starts_its_trigger_once(nc: Client) -> None:
    await publish(nc, push("e1"), msg_id="first")
    expected = run_id("team", "on-push", "git.example/repo", "e1")
    view = await until(lambda: workflow(nc, expected), what="the triggered workflow")
    assert view.origin.kind == "trigger"
    assert (view.origin.trigger, view.origin.event_id, view.origin.event_source) == (
        "on-push", "e1", "git.example/repo",
    )  # fmt: skip
    assert view.project == "team"
    assert view.template == "greet@1.0.0"
    assert view.parameters == {"who": "bob at git.example/repo", "times": 2}
    # A second trigger that takes the event, then the same event again past JetStream's
    # dedup (another Nats-Msg-Id: a sender that retried late). Had it been handled as
    # new, the second trigger would start a run of its own.
    also = msgspec.structs.replace(ON_PUSH, name="also-on-push")
    await ask(nc, endpoints.SAVE_TRIGGER, also)
    await publish(nc, push("e1"), msg_id="second")

    async def both_handled() -> bool:
        info = await nc.jetstream().consumer_info("AIOP_EXT", "task-manager-external")
        return bool(info.delivered.stream_seq >= 2 and info.num_ack_pending == 0)

    await until(both_handled, what="both deliveries handled")
    page: EventPage = await ask(nc, endpoints.LIST_EVENTS, EventsQuery(project="team"))
    assert [(e.id, e.runs) for e in page.events] == [
        ("e1", [TriggerRun(trigger="on-push", workflow_id=expected)])
    ]
    info = await nc.jetstream().stream_info("AIOP", subjects_filter="aiop.workflow.submitted.v1.>")
    assert info.state.subjects == {f"aiop.workflow.submitted.v1.{expected}": 1}


ON_RELEASE = Trigger(
    name="on-release", project="team", event_type="com.example.push", filter={"ref": "release"},
    target=TriggerTarget(task="greet-task", parameters={"who": "${{ event.data.author }}"}),
    created_by="alice",
)  # fmt: skip


async def test_a_task_target_runs_the_task_and_an_archived_project_starts_nothing(
    nc: Client,
) -> None:
    await ask(nc, endpoints.CREATE_PROJECT, NewProject(name="team", created_by="alice"))
    task = TaskSpec(template="greet", parameters={"who": "task", "times": 5})
    await ask(nc, endpoints.SAVE_TASK, SaveTask(project="team", name="greet-task", task=task))
    await ask(nc, endpoints.SAVE_TRIGGER, ON_RELEASE)
    await publish(nc, push("r1", ref="release"))
    expected = run_id("team", "on-release", "git.example/repo", "r1")
    view = await until(lambda: workflow(nc, expected), what="the task's workflow")
    assert (view.task, view.template, view.project) == ("greet-task", "greet@1.0.0", "team")
    assert view.parameters == {"who": "bob", "times": 5}  # the event's over the task's
    assert view.origin.trigger == "on-release"

    await ask(nc, endpoints.ARCHIVE_PROJECT, ProjectRef(name="team"))
    await publish(nc, push("r2", ref="release"))  # to the task
    await publish(nc, push("m2"))  # to the template (on-push)
    why = "project team is archived: it starts nothing new"
    released = await until(lambda: recorded(nc, "r2"), what="r2 recorded")
    assert released.runs == [TriggerRun(trigger="on-release", reason=why)]
    pushed = await until(lambda: recorded(nc, "m2"), what="m2 recorded")
    assert pushed.runs == [TriggerRun(trigger="on-push", reason=why)]
    info = await nc.jetstream().stream_info("AIOP", subjects_filter="aiop.workflow.submitted.v1.>")
    assert set(info.state.subjects or {}) == {f"aiop.workflow.submitted.v1.{expected}"}


async def test_a_trigger_of_an_unknown_task_or_of_two_targets_is_refused(nc: Client) -> None:
    with pytest.raises(QueryFailed) as unknown:
        await ask(nc, endpoints.SAVE_TRIGGER, ON_RELEASE)  # team holds no task greet-task
    assert unknown.value.code == 422
    assert unknown.value.description == "no task greet-task in project team"
    both = msgspec.structs.replace(
        ON_RELEASE, target=TriggerTarget(template="greet", task="greet-task")
    )
    neither = msgspec.structs.replace(ON_RELEASE, target=TriggerTarget())
    for target in (both, neither):
        with pytest.raises(QueryFailed) as refused:
            await ask(nc, endpoints.SAVE_TRIGGER, target)
        assert refused.value.code == 422
        assert "a template or a task: give exactly one" in refused.value.description


async def test_an_event_no_trigger_takes_is_kept(nc: Client) -> None:
    await publish(nc, push("e2", ref="dev"))
    record = await until(lambda: recorded(nc, "e2"), what="the event recorded")
    assert record.runs == []
    assert record.data == {"ref": "dev", "author": "bob", "n": 2}
    assert await recorded(nc, "e2", matched=False) is not None
    assert await recorded(nc, "e2", matched=True) is None
    assert await recorded(nc, "e2", type="com.example.*") is not None
    assert await recorded(nc, "e2", type="com.other") is None


async def test_binary_mode_on_nats_and_a_template_that_cannot_render(nc: Client) -> None:
    # times must be an integer: the template refuses "many", and the event says why.
    headers = {"ce-specversion": "1.0", "ce-id": "e3", "ce-source": "git.example/repo",
               "ce-type": "com.example.push", "ce-aiopproject": "team",
               "content-type": "application/json"}  # fmt: skip
    body = json.dumps({"ref": "main", "author": "bob", "n": "many"}).encode()
    await nc.jetstream().publish("ext.repo.push", body, headers=headers)
    record = await until(lambda: recorded(nc, "e3"), what="the event recorded")
    (run,) = record.runs
    assert run.trigger == "on-push"
    assert run.workflow_id is None
    assert run.reason is not None
    assert "greet@1.0.0" in run.reason
    assert "times" in run.reason


async def test_what_is_no_cloudevent_is_dead_lettered_with_the_reason(nc: Client) -> None:
    js = nc.jetstream()
    dlq = await js.subscribe("aiop.dlq.recorded.v1.AIOP_EXT.>", ordered_consumer=True)
    await js.publish("ext.some.thing", b'{"hello": "world"}')
    record = msgspec.json.decode((await dlq.next_msg(timeout=10)).data, type=DeadLetterRecorded)
    assert record.original_subject == "ext.some.thing"
    assert record.consumer == "task-manager-external"
    assert "not a CloudEvent" in record.reason
    assert record.payload == b'{"hello": "world"}'


async def test_triggers_are_managed_per_project(nc: Client) -> None:
    listed = await ask(nc, endpoints.LIST_TRIGGERS, TriggersQuery(project="team"))
    assert [t.name for t in listed.triggers] == ["on-push"]
    assert (await ask(nc, endpoints.LIST_TRIGGERS, TriggersQuery(project="other"))).triggers == []
    with pytest.raises(QueryFailed) as missing:
        await ask(nc, endpoints.GET_TRIGGER, TriggerRef(project="other", name="on-push"))
    assert missing.value.code == 404
    changed = msgspec.structs.replace(ON_PUSH, enabled=False)
    saved = await ask(nc, endpoints.SAVE_TRIGGER, changed)
    assert not saved.created
    assert saved.trigger.enabled is False
    with pytest.raises(QueryFailed) as invalid:
        await ask(nc, endpoints.SAVE_TRIGGER, msgspec.structs.replace(ON_PUSH, name="a b"))
    assert invalid.value.code == 422
    # Off, it starts nothing: the event is kept as unmatched.
    await publish(nc, push("e4"))
    record = await until(lambda: recorded(nc, "e4"), what="the event recorded")
    assert record.runs == []
    gone = await ask(nc, endpoints.DELETE_TRIGGER, TriggerRef(project="team", name="on-push"))
    assert gone.name == "on-push"
    with pytest.raises(QueryFailed) as again:
        await ask(nc, endpoints.DELETE_TRIGGER, TriggerRef(project="team", name="on-push"))
    assert again.value.code == 404


async def test_events_are_listed_a_page_at_a_time(nc: Client) -> None:
    for n in range(5):
        await publish(nc, push(f"p{n}", ref="none"))
    await until(lambda: recorded(nc, "p4"), what="the last event recorded")
    await until(lambda: recorded(nc, "p0"), what="the first event recorded")
    seen: list[str] = []
    cursor = None
    while True:
        page: EventPage = await ask(
            nc, endpoints.LIST_EVENTS, EventsQuery(project="team", limit=2, cursor=cursor)
        )
        seen += [e.id for e in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == [f"p{n}" for n in range(5)]
    assert len(seen) == 5
    with pytest.raises(QueryFailed) as bad:
        await ask(nc, endpoints.LIST_EVENTS, EventsQuery(project="team", cursor="nope"))
    assert bad.value.code == 400
