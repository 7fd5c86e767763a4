"""Two task-manager replicas on one PostgreSQL and one nats-server at once: however the
bus spreads work between them, and however often a submission or an external event comes
(the same message again, the same event id past JetStream's dedupe, the same workflow id
under another event id), each workflow is stored once and answered once, and each
external event is recorded once and starts one workflow.

Every wait is on a condition, polled with a deadline (``until``)."""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from aiop.contracts import StepSpec, WorkflowSpec, WorkflowSubmitted, endpoints
from aiop.contracts.envelope import encode_event
from aiop.contracts.subjects import KV_TEMPLATES
from aiop.contracts.templates import Template, template_key
from aiop.contracts.triggers import CloudEvent, Trigger, TriggerTarget, ext_subject
from aiop.devstack import until
from aiop.servicekit import open_bucket, rpc
from aiop.task_manager.main import TaskManagerSettings, build
from aiop.task_manager.submissions import run_id
from aiop.task_manager.triggers import Triggers

pytestmark = pytest.mark.integration

SPEC = WorkflowSpec(name="build", steps=[StepSpec(name="lint", run=["ruff"])])
ACCEPTED = "aiop.workflow.accepted.v1.>"
SUBMITTED = "aiop.workflow.submitted.v1.>"
GREET = Template(
    name="greet", version="1.0.0", project="team",
    parameters={"type": "object", "properties": {"who": {"type": "string"}}},
    workflow={"name": "greet", "steps": [{"name": "say", "run": ["echo", "${{ params.who }}"]}]},
)  # fmt: skip
ON_PUSH = Trigger(
    name="on-push", project="team", event_type="com.example.push",
    target=TriggerTarget(template="greet", parameters={"who": "${{ event.data.author }}"}),
    created_by="alice",
)  # fmt: skip
SOURCE = "git.example/repo"
UNPUBLISHED = "select count(*) from outbox where published_at is null"  # answers not out yet


@contextlib.asynccontextmanager
async def replica(nats_url: str, pg_url: str) -> AsyncIterator[None]:
    app = build(TaskManagerSettings(nats_url=nats_url, database_url=pg_url,
                                    outbox_interval_s=0.05, outbox_grace_s=0.5))  # fmt: skip
    task = asyncio.create_task(app.run())
    try:
        yield
    finally:
        app.exit()
        await task


@pytest.fixture
def handled_by(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """External events handled, per replica (its Triggers object): evidence that the
    two replicas did race, rather than one doing all the work."""
    seen: Counter[int] = Counter()
    real = Triggers.on_external

    async def on_external(self: Triggers, event: CloudEvent) -> None:
        seen[id(self)] += 1
        await real(self, event)

    monkeypatch.setattr(Triggers, "on_external", on_external)  # before the replicas build
    return seen


@pytest.fixture
async def nc(nats_url: str, pg_url: str, handled_by: Counter[int]) -> AsyncIterator[Client]:
    """Two running task-manager replicas, and a client of their nats-server."""
    async with replica(nats_url, pg_url), replica(nats_url, pg_url):
        client = await nats.connect(nats_url)
        try:
            await rpc.wait_ready(client, "task-manager", timeout=10)
            yield client
        finally:
            await client.close()


async def sql(pg_url: str, query: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(pg_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def count(pg_url: str, query: str, *args: Any) -> int:
    return int((await sql(pg_url, query, *args))[0][0])


async def per_subject(js: JetStreamContext, subjects: str) -> dict[str, int]:
    """How many messages the AIOP stream holds on each subject under ``subjects``: what
    JetStream kept, its duplicate window having dropped repeated Nats-Msg-Ids."""
    info = await js.stream_info("AIOP", subjects_filter=subjects)
    return dict(info.state.subjects or {})


async def send(js: JetStreamContext, event: WorkflowSubmitted, msg_id: str | None = None) -> None:
    env = encode_event(event, "test")
    headers = {**env.headers, "Nats-Msg-Id": msg_id or event.event_id}
    await js.publish(env.subject, env.body, headers=headers, stream="AIOP")


async def drained(js: JetStreamContext, stream: str, durable: str) -> bool:
    """The consumer has taken and settled every message of its stream."""
    info = await js.consumer_info(stream, durable)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_submissions_are_stored_and_answered_once_across_replicas(
    nc: Client, pg_url: str
) -> None:
    js = nc.jetstream()
    n = 60
    ids = [f"wf{i:03d}" for i in range(n)]
    firsts = [WorkflowSubmitted(event_id=f"sub-{w}", workflow_id=w, spec=SPEC, principal="me")
              for w in ids]  # fmt: skip
    sends = [send(js, e) for e in firsts]
    # The same message again (JetStream drops it in its window) ...
    sends += [send(js, e) for e in firsts[::3]]
    # ... the same event id past the window (another Nats-Msg-Id: the inbox drops it) ...
    sends += [send(js, e, msg_id=f"late-{e.event_id}") for e in firsts[1::3]]
    # ... and the same workflow id under another event id (the workflow id stands).
    sends += [send(js, msgspec.structs.replace(e, event_id=f"again-{e.workflow_id}"))
              for e in firsts[2::3]]  # fmt: skip
    await asyncio.gather(*sends)  # all at once: both replicas fetch and store together
    kept = await per_subject(js, SUBMITTED)
    # JetStream dropped the first kind of repeat; the others reach task-manager.
    assert sum(kept.values()) == n + len(firsts[1::3]) + len(firsts[2::3])

    async def settled() -> bool:
        return (
            await drained(js, "AIOP", "task-manager-submitted")
            and await count(pg_url, "select count(*) from workflows") == n
            and await count(pg_url, UNPUBLISHED) == 0
        )

    await until(settled, timeout_s=15, what="every submission stored and answered")
    stored = await sql(pg_url, "select id, state from workflows")
    assert sorted(r["id"] for r in stored) == ids
    assert {r["state"] for r in stored} == {"accepted"}
    answered = await per_subject(js, ACCEPTED)
    assert answered == {f"aiop.workflow.accepted.v1.{w}": 1 for w in ids}
    rejected = await per_subject(js, "aiop.workflow.rejected.v1.>")
    assert rejected == {}


async def test_external_events_start_one_workflow_each_across_replicas(
    nc: Client, pg_url: str, handled_by: Counter[int]
) -> None:
    js = nc.jetstream()
    kv = await open_bucket(js, KV_TEMPLATES)
    await kv.put(template_key("team", "greet", "1.0.0"), msgspec.json.encode(GREET))
    reply = await rpc.request(nc, endpoints.SAVE_TRIGGER.subject, ON_PUSH, timeout=5)
    assert msgspec.json.decode(reply, type=endpoints.SAVE_TRIGGER.reply).created
    n = 40
    subject = ext_subject(SOURCE, "com.example.push")
    headers = {"content-type": "application/cloudevents+json"}

    def event(i: int) -> bytes:
        return json.dumps({"specversion": "1.0", "id": f"e{i:03d}", "source": SOURCE,
                           "type": "com.example.push", "aiopproject": "team",
                           "data": {"author": f"dev{i}"}}).encode()  # fmt: skip

    async def publish(i: int, msg_id: str | None = None) -> None:
        more = {"Nats-Msg-Id": msg_id} if msg_id else {}
        await js.publish(subject, event(i), headers={**headers, **more})

    sends = [publish(i, msg_id=f"ext-{i}") for i in range(n)]
    sends += [publish(i, msg_id=f"ext-{i}") for i in range(0, n, 4)]  # dropped by JetStream
    sends += [publish(i) for i in range(1, n, 2)]  # no Nats-Msg-Id: the same event again
    sends += [publish(i) for i in range(1, n, 4)]  # and a third time
    await asyncio.gather(*sends)
    expected = {run_id("team", "on-push", SOURCE, f"e{i:03d}") for i in range(n)}

    async def settled() -> bool:
        return (
            await drained(js, "AIOP_EXT", "task-manager-external")
            and await drained(js, "AIOP", "task-manager-submitted")
            and await count(pg_url, "select count(*) from workflows") == n
            and await count(pg_url, UNPUBLISHED) == 0
        )

    await until(settled, timeout_s=15, what="every event recorded and its workflow stored")
    assert len(handled_by) == 2, handled_by  # both replicas took events
    assert sum(handled_by.values()) >= len(sends) - len(range(0, n, 4))  # each kept message
    events = await sql(pg_url, "select event_id, runs from external_events")
    assert sorted(r["event_id"] for r in events) == [f"e{i:03d}" for i in range(n)]
    runs = [json.loads(r["runs"]) for r in events]
    assert all(len(r) == 1 and r[0]["trigger"] == "on-push" for r in runs), runs
    assert {r[0]["workflow_id"] for r in runs} == expected
    stored = await sql(pg_url, "select id, origin->>'event_id' as event_id from workflows")
    assert {r["id"] for r in stored} == expected
    assert Counter(r["event_id"] for r in stored) == {f"e{i:03d}": 1 for i in range(n)}
    assert await per_subject(js, SUBMITTED) == {f"aiop.workflow.submitted.v1.{w}": 1
                                                for w in expected}  # fmt: skip
    assert await per_subject(js, ACCEPTED) == {f"aiop.workflow.accepted.v1.{w}": 1
                                               for w in expected}  # fmt: skip
