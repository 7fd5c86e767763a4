"""Duplicates (the same event id twice, redelivered copies, repeated submissions) and
poison messages (undecodable, wrong shape, unknown version) in the middle of real load.

Every copy must have no second effect; every poison message must end in AIOP_DLQ once
for each consumer it reached, with the reason, while the other workflows carry on.
"""

import asyncio
import uuid

import msgspec
import pytest

from aiop.contracts import WorkflowSpec, WorkflowSubmitted
from aiop.contracts.envelope import encode_event
from aiop.contracts.subjects import STREAM_EVENTS, workflow_id_of
from aiop.devstack import until
from tests.faults.harness import Platform
from tests.faults.ledger import drained, read_stream, settle
from tests.faults.load import Load, spec

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(want) == len(have)


async def publish_poison(platform: Platform, live: str) -> set[tuple[str, int]]:
    """Publish poison; the (consumer, stream seq) pairs that must be dead-lettered."""
    poison = [
        ("aiop.workflow.submitted.v1.poison0", b"\x00 not an event", {}),
        ("aiop.workflow.submitted.v1.poison1", b'{"workflow_id": 5}', {}),  # wrong shape
        ("aiop.workflow.submitted.v2.poison2", b'{"workflow_id": "poison2"}',
         {"ce-type": "aiop.workflow.submitted.v2"}),  # a version no consumer subscribes to
        (f"aiop.step.completed.v9.{live}", b'{"workflow_id": "%s"}' % live.encode(),
         {"ce-type": "aiop.step.completed.v9"}),
        (f"aiop.workflow.completed.v1.{live}", b"garbage", {}),  # must not finish it
        ("aiop.workflow.requested.v1.default.poison3", b"[]", {}),  # reaches the executor
    ]  # fmt: skip
    js = platform.nc.jetstream()
    consumers = [c for c in await js.consumers_info(STREAM_EVENTS) if c.config.durable_name]
    expected = set()
    for subject, body, headers in poison:
        ack = await js.publish(subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex, **headers})
        for c in consumers:
            filters = c.config.filter_subjects or [c.config.filter_subject or ">"]
            if any(matches(f, subject) for f in filters):
                expected.add((c.config.durable_name, ack.seq))
    return expected


async def submit_directly(platform: Platform, count: int) -> dict[str, str]:
    """Submissions published twice under one event id, then once more as a redelivery."""
    js = platform.nc.jetstream()
    accepted = {}
    for n in range(count):
        body = msgspec.convert(spec(1000 + n, platform.effects, False), WorkflowSpec)
        event = WorkflowSubmitted(workflow_id=f"dup{n}", spec=body, principal="dev")
        envelope = encode_event(event, "aiop/faults")
        first = await js.publish(envelope.subject, envelope.body, headers=envelope.headers)
        again = await js.publish(envelope.subject, envelope.body, headers=envelope.headers)
        assert again.duplicate, "the duplicate window let a copy in"
        assert again.seq == first.seq
        copy = {**envelope.headers, "Nats-Msg-Id": uuid.uuid4().hex}
        await js.publish(envelope.subject, envelope.body, headers=copy)
        accepted[event.workflow_id] = "succeeded"
    return accepted


async def redeliver_everything(platform: Platform, workflow_ids: set[str]) -> int:
    """Every stored event of these (finished) workflows again, under fresh Nats-Msg-Ids."""
    js = platform.nc.jetstream()
    copies = 0
    for msg in await read_stream(platform, STREAM_EVENTS, "aiop.>"):
        if workflow_id_of(msg.subject) in workflow_ids:
            headers = {**(msg.headers or {}), "Nats-Msg-Id": uuid.uuid4().hex}
            await js.publish(msg.subject, msg.data, headers=headers)
            copies += 1
    return copies


async def resubmit(platform: Platform, load: Load, count: int) -> None:
    """The same Idempotency-Key again names the same workflow, and runs nothing."""
    import httpx

    headers = {"Authorization": f"Bearer {platform.token}"}
    async with httpx.AsyncClient(base_url=platform.gateway_url, headers=headers) as http:
        for n in range(count):
            key = {"Idempotency-Key": f"{platform.root.name}-{n}"}
            body = spec(n, platform.effects, n % load.fail_every == load.fail_every - 1)
            reply = await http.post("/v1/workflows", json=body, headers=key)
            assert reply.status_code == 202, reply.text
            assert reply.json()["workflow_id"] in load.accepted


@pytest.mark.timeout(240)
async def test_duplicates_and_poison_during_load(platform: Platform) -> None:
    load = Load(platform, rate=4)
    load.start()
    # Poison aimed at a real workflow, maybe still running.
    await until(lambda: load.accepted, 30, "a first workflow accepted")
    live = next(iter(load.accepted))
    unprocessable = await publish_poison(platform, live)
    direct = await submit_directly(platform, 5)
    await asyncio.sleep(4)
    await load.stop()
    accepted = {**load.accepted, **direct}
    await drained(platform)
    first = await settle(platform, accepted, "duplicates + poison", load.refused,
                         unprocessable=unprocessable)  # fmt: skip
    first.check()

    # Now everything again, after the fact: no workflow may run or end a second time.
    # (Not ``live``: copies of the poison aimed at it would be new poison.)
    finished = {wf for wf in list(load.accepted)[:11] if wf != live} | set(direct)
    copies = await redeliver_everything(platform, finished)
    await resubmit(platform, load, 10)
    await drained(platform)
    again = await settle(platform, accepted, f"+ {copies} redelivered copies", load.refused,
                         unprocessable=unprocessable)  # fmt: skip
    again.check()
