"""Batch consumers against a real nats-server: a fetch handled whole, each message
settled by its own outcome, and a failing batch split so one message cannot sink it."""

import asyncio

import nats
import pytest

from aiop.contracts import DeadLetterRecorded, WorkflowQueued
from aiop.contracts.envelope import decode_event, encode_event
from aiop.servicekit import (
    Delivery,
    DeliveryPolicy,
    Outcomes,
    Permanent,
    durable_batch_consumer,
    ensure_streams,
    make_broker,
)
from aiop.servicekit.app import service_app
from aiop.servicekit.rpc import wait_ready
from aiop.servicekit.settings import ServiceSettings

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(max_deliver=3, nak_delays=(0.01, 0.01, 0.01), ack_wait=5, batch_size=64)
REASONS = ["ok-1", "poison", "flaky", "ok-2", "breaks-batch", "ok-3"]


async def dead_letters(nc: nats.NATS, n: int) -> list[DeadLetterRecorded]:
    sub = await nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
    return [
        decode_event((await sub.next_msg(timeout=10)).data, DeadLetterRecorded) for _ in range(n)
    ]


async def test_a_fetch_is_handled_whole_and_settled_per_message(nats_url: str) -> None:
    broker, _ = make_broker("test", nats_url)
    # Everything is in the stream before the consumer starts, so the first fetch has it all.
    nc = await nats.connect(nats_url)
    await ensure_streams(nc.jetstream())
    for reason in REASONS:
        env = encode_event(WorkflowQueued(workflow_id=reason, reason=reason), "test")
        await nc.jetstream().publish(env.subject, env.body, headers=env.headers, stream="AIOP")

    batches: list[list[str]] = []
    handled: list[str] = []
    all_done = asyncio.Event()

    async def handler(batch: list[Delivery]) -> Outcomes:
        reasons = [decode_event(one.msg.data, WorkflowQueued).reason for one in batch]
        batches.append(reasons)
        if "breaks-batch" in reasons:
            raise ConnectionError("this message breaks whatever batch it is in")
        outcomes: Outcomes = []
        for one, reason in zip(batch, reasons, strict=True):
            if reason == "poison":
                outcomes.append(Permanent("cannot ever be queued"))
            elif reason == "flaky" and one.msg.metadata.num_delivered == 1:
                outcomes.append(ConnectionError("briefly away"))
            else:
                outcomes.append(None)
                handled.append(reason)
        if sorted(handled) == ["flaky", "ok-1", "ok-2", "ok-3"]:
            all_done.set()
        return outcomes

    durable_batch_consumer(broker, "aiop.workflow.queued.v1.>", "batch", policy=FAST)(handler)
    app = service_app("test", broker, ServiceSettings(nats_url=nats_url))
    task = asyncio.create_task(app.run())
    try:
        await wait_ready(nc, "test", timeout=10)
        await asyncio.wait_for(all_done.wait(), 10)
        dead = await dead_letters(nc, 2)
    finally:
        app.exit()
        await task
        await nc.close()

    assert batches[0] == REASONS  # one fetch, handed over whole and in stream order
    # The failed batch was split: each message handled alone, then retried by its outcome.
    assert batches[1:7] == [[r] for r in REASONS]
    assert sorted(handled) == ["flaky", "ok-1", "ok-2", "ok-3"]  # each exactly once
    assert {d.original_subject: d.reason for d in dead} == {
        "aiop.workflow.queued.v1.poison": "Permanent: cannot ever be queued",
        "aiop.workflow.queued.v1.breaks-batch": (
            "failed 3 deliveries; last error ConnectionError:"
            " this message breaks whatever batch it is in"
        ),
    }
