"""task-manager against a real nats-server and PostgreSQL."""

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from aiop.contracts import (
    StepCompleted,
    StepSpec,
    StepStarted,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowQueued,
    WorkflowRejected,
    WorkflowRequested,
    WorkflowSpec,
    WorkflowStarted,
    WorkflowSubmitted,
)
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.envelope import decode_event, encode_event
from aiop.contracts.events import Event
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.devstack import until
from aiop.servicekit import rpc
from aiop.task_manager.main import TaskManagerSettings, build

pytestmark = pytest.mark.integration

SPEC = WorkflowSpec(
    name="build",
    steps=[
        StepSpec(name="lint", run=["ruff"]),
        StepSpec(name="test", run=["pytest"], needs=["lint"]),
    ],
)


@pytest.fixture
async def nc(nats_url: str, pg_url: str) -> AsyncIterator[Client]:
    """A running task-manager, and a client connection to its nats-server."""
    settings = TaskManagerSettings(
        nats_url=nats_url, database_url=pg_url, outbox_interval_s=0.05, outbox_grace_s=0.0
    )
    app = build(settings)
    task = asyncio.create_task(app.run())
    client = await nats.connect(nats_url)
    try:
        await rpc.wait_ready(client, "task-manager", timeout=10)
        yield client
    finally:
        app.exit()
        await task
        await client.close()


async def send(js: JetStreamContext, event: Event, msg_id: str | None = None) -> None:
    env = encode_event(event, "test")
    headers = {**env.headers, "Nats-Msg-Id": msg_id or event.event_id}
    await js.publish(env.subject, env.body, headers=headers, stream="AIOP")


async def query(nc: Client, workflow_id: str) -> WorkflowView:
    body = await rpc.request(nc, GET_WORKFLOW.subject, WorkflowQuery(workflow_id=workflow_id))
    return msgspec.json.decode(body, type=WorkflowView)


async def test_submitted_is_stored_and_accepted(nc: Client, pg_url: str) -> None:
    js = nc.jetstream()
    sub = await js.subscribe("aiop.workflow.accepted.v1.>", ordered_consumer=True)
    await send(js, WorkflowSubmitted(workflow_id="wf1", spec=SPEC, principal="me"))
    msg = await sub.next_msg(timeout=5)
    accepted = decode_event(msg.data, WorkflowAccepted)
    assert accepted.workflow_id == "wf1"
    assert accepted.spec == SPEC
    assert (msg.headers or {})["Nats-Msg-Id"] == accepted.event_id
    assert "traceparent" in (msg.headers or {})
    view = await query(nc, "wf1")
    assert (view.state, view.name, [s.name for s in view.steps]) == (
        "accepted", "build", ["lint", "test"],
    )  # fmt: skip
    assert view.trace_id is not None
    assert len(view.trace_id) == 32
    # The accepted event continues the trace of the submission.
    assert view.trace_id in (msg.headers or {})["traceparent"]
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("select published_at is not null from outbox") is True
    finally:
        await conn.close()


async def test_invalid_spec_is_rejected(nc: Client) -> None:
    js = nc.jetstream()
    sub = await js.subscribe("aiop.workflow.rejected.v1.>", ordered_consumer=True)
    bad = WorkflowSpec(name="bad", steps=[StepSpec(name="a", run=["x"], needs=["ghost"])])
    await send(js, WorkflowSubmitted(workflow_id="wf2", spec=bad, principal="me"))
    rejected = decode_event((await sub.next_msg(timeout=5)).data, WorkflowRejected)
    assert "unknown step 'ghost'" in rejected.reasons[0]
    view = await query(nc, "wf2")
    assert view.state == "rejected"
    assert view.reason
    assert "ghost" in view.reason


async def test_a_submission_postgresql_cannot_store_is_rejected_not_lost(nc: Client) -> None:
    js = nc.jetstream()
    sub = await js.subscribe("aiop.workflow.rejected.v1.>", ordered_consumer=True)
    # jsonb cannot hold a NUL character: storing this spec as it is fails every time.
    nul = WorkflowSpec(name="nul", steps=[StepSpec(name="a", run=["echo", "a\0b"])])
    await send(js, WorkflowSubmitted(workflow_id="wf-nul", spec=nul, principal="me"))
    rejected = decode_event((await sub.next_msg(timeout=10)).data, WorkflowRejected)
    assert rejected.workflow_id == "wf-nul"
    assert "NUL character" in rejected.reasons[0]
    view = await query(nc, "wf-nul")
    assert (view.state, view.name, view.steps) == ("rejected", "nul", [])
    assert view.reason is not None
    assert "NUL character" in view.reason
    info = await js.consumer_info("AIOP", "task-manager-submitted")
    assert info.num_redelivered == 0  # decided on its first delivery, never dead-lettered


async def test_redelivered_event_has_one_effect(nc: Client, pg_url: str) -> None:
    js = nc.jetstream()
    submitted = WorkflowSubmitted(workflow_id="wf3", spec=SPEC, principal="me")
    # A different Nats-Msg-Id gets past JetStream's dedup: what a redelivery looks like.
    await send(js, submitted, msg_id="first")
    await send(js, submitted, msg_id="second")

    async def both_handled() -> bool:
        info = await js.consumer_info("AIOP", "task-manager-submitted")
        return bool(info.delivered.stream_seq >= 2 and info.num_ack_pending == 0)

    await until(both_handled, what="both events handled")
    info = await js.stream_info("AIOP", subjects_filter="aiop.workflow.accepted.v1.>")
    assert info.state.subjects == {"aiop.workflow.accepted.v1.wf3": 1}
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("select count(*) from outbox") == 1
        assert await conn.fetchval("select count(*) from inbox") == 1
    finally:
        await conn.close()


async def test_full_run_is_visible_in_the_query(nc: Client) -> None:
    js = nc.jetstream()
    wf = "wf4"
    sub = await js.subscribe(f"aiop.workflow.accepted.v1.{wf}", ordered_consumer=True)
    await send(js, WorkflowSubmitted(workflow_id=wf, spec=SPEC, principal="me"))
    await sub.next_msg(timeout=5)
    await send(js, WorkflowQueued(workflow_id=wf, reason="no executor in pool default"))

    async def state_is(state: str) -> bool:
        return (await query(nc, wf)).state == state

    await until(lambda: state_is("queued"), what="state queued")
    assert (await query(nc, wf)).reason == "no executor in pool default"
    for event in (
        WorkflowRequested(workflow_id=wf, spec=SPEC, pool="default"),
        WorkflowStarted(workflow_id=wf, executor_id="ex1"),
        StepStarted(workflow_id=wf, step="lint"),
        StepCompleted(workflow_id=wf, step="lint", duration_s=0.25),
        StepStarted(workflow_id=wf, step="test"),
        StepCompleted(workflow_id=wf, step="test", exit_code=0, duration_s=1.5),
        WorkflowCompleted(workflow_id=wf, executor_id="ex1", duration_s=2.0),
    ):
        await send(js, event)

    async def all_done() -> bool:
        view = await query(nc, wf)
        return view.state == "succeeded" and all(s.state == "succeeded" for s in view.steps)

    await until(all_done, what="every event folded")
    view = await query(nc, wf)
    assert (view.attempt, view.executor_id, view.reason) == (1, "ex1", None)
    assert [(s.name, s.exit_code, s.duration_s) for s in view.steps] == [
        ("lint", 0, 0.25), ("test", 0, 1.5),
    ]  # fmt: skip
    assert view.steps[1].needs == ["lint"]


async def test_unknown_workflow_is_404(nc: Client) -> None:
    with pytest.raises(rpc.QueryFailed) as failed:
        await query(nc, "nope")
    assert failed.value.code == 404


async def test_unpublished_outbox_rows_are_relayed(nc: Client, pg_url: str) -> None:
    js = nc.jetstream()
    sub = await js.subscribe("aiop.workflow.rejected.v1.>", ordered_consumer=True)
    # As if the process died between its commit and its publish.
    event = WorkflowRejected(workflow_id="wf5", reasons=["left behind"])
    env = encode_event(event, "aiop/task-manager")
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "insert into outbox (id, subject, headers, body) values ($1, $2, $3::jsonb, $4)",
            event.event_id, env.subject, json.dumps(env.headers), env.body,
        )  # fmt: skip
        msg = await sub.next_msg(timeout=5)
        assert (msg.headers or {})["Nats-Msg-Id"] == event.event_id
        assert decode_event(msg.data, WorkflowRejected).reasons == ["left behind"]

        async def marked() -> bool:
            return bool(await conn.fetchval("select published_at is not null from outbox"))

        await until(marked, what="outbox rows marked published")
    finally:
        await conn.close()
