"""Batch consumers against a real nats-server: a fetch handled whole, each message
settled by its own outcome, and a failing batch split so one message cannot sink it."""

import asyncio

import pytest
from nats.aio.client import Client

from aiop.contracts import DeadLetterRecorded, WorkflowQueued
from aiop.contracts.envelope import decode_event, encode_event
from aiop.servicekit import Delivery, DeliveryPolicy, Outcomes, Permanent, Service, ServiceSettings
from aiop.servicekit.streams import ensure_streams

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(max_deliver=3, nak_delays_s=(0.01, 0.01, 0.01), ack_wait_s=5)
REASONS = ["ok-1", "poison", "flaky", "ok-2", "breaks-batch", "ok-3"]


async def dead_letters(nc: Client, n: int) -> list[DeadLetterRecorded]:
    sub = await nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
    return [
        decode_event((await sub.next_msg(timeout=10)).data, DeadLetterRecorded) for _ in range(n)
    ]


async def test_a_fetch_is_handled_whole_and_settled_per_message(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    # Everything is in the stream before the consumer starts, so the first fetch has it all.
    await ensure_streams(nc.jetstream())
    for reason in REASONS:
        env = encode_event(WorkflowQueued(workflow_id=reason, reason=reason), "test")
        await nc.jetstream().publish(env.subject, env.body, headers=env.headers, stream="AIOP")

    batches: list[list[str]] = []
    handled: list[str] = []
    all_done = asyncio.Event()

    async def handler(batch: list[Delivery[WorkflowQueued]]) -> Outcomes:
        reasons = [one.event.reason for one in batch]
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

    svc = Service("test", settings)
    svc.consume_batch(WorkflowQueued, handler, durable="batch", policy=FAST, batch_size=64)
    async with running(svc):
        await asyncio.wait_for(all_done.wait(), 10)
        dead = await dead_letters(nc, 2)

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
