"""GET /v1/dead-letters and POST /v1/dead-letters/{seq}/replay against a real nats-server:
junk on ``ext.>`` dead-lettered by servicekit's delivery policy, listed with its reason,
replayed fixed and consumed; a record of another project never shown nor replayed."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import DeadLetterRecorded, StepStarted, WorkflowSubmitted
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.triggers import EXT_EVENTS, CloudEvent
from aiop.contracts.workflow import WorkflowSpec
from aiop.servicekit import Permanent, Service, ServiceSettings, rpc
from aiop.servicekit.cloudevents import NotACloudEvent, read_cloudevent

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration

WAIT_S = 10.0
FIXED = {"specversion": "1.0", "id": "noise-1", "source": "shop", "type": "noise"}
VIEWS = {
    "wf-mine": WorkflowView(workflow_id="wf-mine", name="b", project="default", state="failed",
                            steps=[]),
    "wf-secret": WorkflowView(workflow_id="wf-secret", name="b", project="secret",
                              state="failed", steps=[]),
}  # fmt: skip


@dataclass
class Bus:
    consumed: "asyncio.Queue[CloudEvent]"  # what the ext.> consumer took
    records: JetStreamContext.PushSubscription  # AIOP_DLQ as it is written

    async def next_record(self) -> tuple[int, dict[str, Any]]:
        msg: Msg = await self.records.next_msg(timeout=WAIT_S)
        return msg.metadata.sequence.stream, json.loads(msg.data)


def read_event(msg: Msg) -> CloudEvent:
    """As task-manager reads ``ext.>``: anything but a CloudEvent is dead-lettered."""
    try:
        return read_cloudevent(msg.headers or {}, msg.data)
    except NotACloudEvent as exc:
        raise Permanent(str(exc)) from None


@pytest.fixture
async def bus(env: Env, nats_url: str) -> AsyncIterator[Bus]:
    """An ``ext.>`` consumer on servicekit's delivery policy, task-manager's answers
    about two workflows, and a reader of the dead-letter stream."""
    consumed: asyncio.Queue[CloudEvent] = asyncio.Queue()
    reader = Service("ext-reader", ServiceSettings(nats_url=nats_url))
    reader.consume_messages(EXT_EVENTS, CloudEvent, read_event, consumed.put,
                            durable="test-external")  # fmt: skip

    async def get(query: WorkflowQuery) -> WorkflowView:
        if query.workflow_id not in VIEWS:
            raise rpc.QueryFailed(404, "unknown workflow")
        return VIEWS[query.workflow_id]

    await reader.start()
    stubs = await rpc.serve(env.nc, "task-manager-stub", [(GET_WORKFLOW, get)])
    records = await env.nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
    try:
        yield Bus(consumed, records)
    finally:
        await records.unsubscribe()
        await stubs.stop()
        await reader.stop()


def token_for(env: Env, *projects: str) -> str:
    key = SigningKey.load_or_create(env.auth_dir)
    return key.sign(token_claims("someone", list(projects), datetime.now(UTC), 600))


async def record(env: Env, subject: str, payload: bytes) -> None:
    """A dead letter as a service's delivery policy writes it."""
    dead = DeadLetterRecorded(stream="AIOP", consumer="reporter", original_subject=subject,
                              stream_seq=1, reason="Permanent: test", deliveries=1,
                              payload=payload)  # fmt: skip
    envelope = encode_event(dead, "test")
    await env.nc.jetstream().publish(envelope.subject, envelope.body, headers=envelope.headers)


def submitted(workflow_id: str, project: str) -> bytes:
    spec = WorkflowSpec(**{**GOOD, "project": project})
    return encode_event(WorkflowSubmitted(workflow_id=workflow_id, spec=spec, principal="p"),
                        "test").body  # fmt: skip


async def listed(env: Env, token: str | None = None, **params: Any) -> dict[str, Any]:
    reply = await env.client.get("/v1/dead-letters", params=params, headers=env.bearer(token))
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


async def replay(env: Env, seq: int, body: Any = None, token: str | None = None) -> Any:
    return await env.client.post(f"/v1/dead-letters/{seq}/replay", json=body,
                                 headers=env.bearer(token))  # fmt: skip


async def test_junk_is_listed_with_its_reason_then_replayed_fixed_once(env: Env, bus: Bus) -> None:
    await env.nc.jetstream().publish("ext.shop.noise", b"hello", headers={"x-from": "shop"})
    seq, written = await bus.next_record()
    assert written["original_subject"] == "ext.shop.noise"

    (item,) = (await listed(env))["items"]
    assert item["seq"] == seq
    assert item["original_subject"] == "ext.shop.noise"
    assert "not a CloudEvent" in item["reason"]
    assert (item["payload"], item["payload_encoding"]) == ("hello", "utf-8")
    assert item["project"] is None
    assert item["workflow_id"] is None
    assert item["replayed_at"] is None
    assert item["replayable"] is True
    assert item["stream"] == "AIOP_EXT"
    assert item["consumer"] == "test-external"
    # Not the caller's: a token without the default project sees no platform record.
    assert (await listed(env, token_for(env, "secret")))["items"] == []
    assert (await replay(env, seq, token=token_for(env, "secret"))).status_code == 404

    # Fixed: the CloudEvent it should have been, consumed this time.
    sent = await replay(env, seq, {"payload": json.dumps(FIXED)})
    assert sent.status_code == 202, sent.text
    assert sent.json()["subject"] == "ext.shop.noise"
    event = await asyncio.wait_for(bus.consumed.get(), WAIT_S)
    assert (event.id, event.source, event.type) == ("noise-1", "shop", "noise")
    (item,) = (await listed(env))["items"]
    assert item["replayed_at"] == sent.json()["replayed_at"]
    assert item["replayed_by"] == "dev"

    again = await replay(env, seq)
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("replayed")
    assert "force" in again.json()["detail"]
    # Forced, as it was stored: junk again, so dead-lettered again.
    forced = await replay(env, seq, {"force": True})
    assert forced.status_code == 202, forced.text
    _, rewritten = await bus.next_record()
    assert rewritten["original_subject"] == "ext.shop.noise"
    assert bus.consumed.empty()


async def test_each_caller_sees_its_projects_records_only(env: Env, bus: Bus) -> None:
    await record(env, "aiop.workflow.submitted.v1.wf-mine", submitted("wf-mine", "default"))
    await record(env, "aiop.workflow.submitted.v1.wf-secret", submitted("wf-secret", "secret"))
    # Never accepted, so task-manager knows it not: its submission names the project.
    await record(env, "aiop.workflow.submitted.v1.wf-new", submitted("wf-new", "secret"))
    step = encode_event(StepStarted(workflow_id="wf-mine", step="s"), "test")
    await record(env, step.subject, step.body)
    await record(env, "aiop.step.started.v1.wf-nobody", b"\xff\xfe")  # no one's: platform
    seqs = [(await bus.next_record())[0] for _ in range(5)]

    mine = (await listed(env))["items"]
    assert [i["seq"] for i in mine] == [seqs[4], seqs[3], seqs[0]]  # newest first
    assert [i["project"] for i in mine] == [None, "default", "default"]
    assert [i["workflow_id"] for i in mine] == ["wf-nobody", "wf-mine", "wf-mine"]
    assert mine[0]["payload_encoding"] == "base64"
    assert mine[0]["payload"] == "//4="
    theirs = (await listed(env, token_for(env, "secret")))["items"]
    assert [(i["seq"], i["project"]) for i in theirs] == [(seqs[2], "secret"), (seqs[1], "secret")]

    # Pages: ``next`` goes on below the last record given.
    first = await listed(env, limit=2)
    assert [i["seq"] for i in first["items"]] == [seqs[4], seqs[3]]
    rest = await listed(env, limit=2, before=first["next"])
    assert [i["seq"] for i in rest["items"]] == [seqs[0]]
    assert rest["next"] is None

    # Another project's record is not even named; a step event is not sent again.
    assert (await replay(env, seqs[1])).status_code == 404
    refused = await replay(env, seqs[3])
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("not-replayable")
    # A fixed submission may not move the run into another project.
    moved = await replay(env, seqs[0], {"payload": submitted("wf-mine", "secret").decode()})
    assert moved.status_code == 422, moved.text
    ok = await replay(env, seqs[0])
    assert ok.status_code == 202, ok.text
    assert ok.json()["subject"] == "aiop.workflow.submitted.v1.wf-mine"


async def test_a_fixed_external_event_stays_in_its_project(env: Env, bus: Bus) -> None:
    await env.nc.jetstream().publish("ext.shop.noise", b"{not json")
    seq, _ = await bus.next_record()
    elsewhere = await replay(env, seq, {"payload": json.dumps({**FIXED, "aiopproject": "secret"})})
    assert elsewhere.status_code == 422, elsewhere.text
    for bad, status in [("{oops", 400), ({"payload": 1}, 422), ({"other": True}, 422)]:
        reply = await env.client.post(
            f"/v1/dead-letters/{seq}/replay", headers=env.bearer(),
            content=bad if isinstance(bad, str) else json.dumps(bad),
        )  # fmt: skip
        assert reply.status_code == status, reply.text
    assert (await replay(env, 10**9)).status_code == 404
    assert (await listed(env, limit=1))["items"][0]["replayed_at"] is None
