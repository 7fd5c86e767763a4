"""The delivery policy against a real nats-server: retries, dead letters, no loss."""

import asyncio

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from aiop.contracts import DeadLetterRecorded, WorkflowQueued
from aiop.contracts.envelope import decode_event
from aiop.servicekit import DeliveryPolicy, Permanent, durable_consumer, make_broker, typed
from aiop.servicekit.app import service_app
from aiop.servicekit.rpc import wait_ready
from aiop.servicekit.settings import ServiceSettings

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(max_deliver=3, nak_delays=(0.01, 0.01, 0.01), ack_wait=5)


async def next_dead_letter(nats_url: str, timeout: float = 10) -> DeadLetterRecorded:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
        msg = await sub.next_msg(timeout=timeout)
        return decode_event(msg.data, DeadLetterRecorded)
    finally:
        await nc.close()


async def start(nats_url: str, handler, durable: str):  # type: ignore[no-untyped-def]
    broker, bus = make_broker("test", nats_url)
    durable_consumer(broker, "aiop.workflow.queued.v1.>", durable, policy=FAST)(handler)
    app = service_app("test", broker, ServiceSettings(nats_url=nats_url))
    task = asyncio.create_task(app.run())
    nc = await nats.connect(nats_url)
    try:
        await wait_ready(nc, "test", timeout=10)
    finally:
        await nc.close()
    return broker, bus, app, task


async def test_transient_failure_is_retried_then_handled(nats_url: str) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(msg: Msg) -> None:
        decode_event(msg.data, WorkflowQueued)
        seen.append(msg.metadata.num_delivered)
        if len(seen) < 2:
            raise ConnectionError("database briefly away")
        done.set()

    _, bus, app, task = await start(nats_url, handler, "retry")
    await bus.publish(WorkflowQueued(workflow_id="wf1", reason="test"))
    await asyncio.wait_for(done.wait(), 10)
    assert seen == [1, 2]
    app.exit()
    await task


async def test_poison_and_exhausted_messages_are_dead_lettered(nats_url: str) -> None:
    handled = asyncio.Event()

    @typed(WorkflowQueued)
    async def handler(event: WorkflowQueued) -> None:
        if event.reason == "never":
            raise Permanent("this workflow can never be queued")
        handled.set()

    broker, bus, app, task = await start(nats_url, handler, "poison")
    await broker.publish(b"{not json", "aiop.workflow.queued.v1.wf2", stream="AIOP")
    record = await next_dead_letter(nats_url)
    assert record.original_subject == "aiop.workflow.queued.v1.wf2"
    assert record.payload == b"{not json"
    assert record.consumer == "poison"
    # The consumer keeps working after a poison message.
    await bus.publish(WorkflowQueued(workflow_id="wf3", reason="fine"))
    await asyncio.wait_for(handled.wait(), 10)
    app.exit()
    await task


async def test_permanent_failure_records_its_reason(nats_url: str) -> None:
    @typed(WorkflowQueued)
    async def handler(event: WorkflowQueued) -> None:
        raise Permanent("this workflow can never be queued")

    _, bus, app, task = await start(nats_url, handler, "perm")
    await bus.publish(WorkflowQueued(workflow_id="wf4", reason="never"))
    record = await next_dead_letter(nats_url)
    assert "can never be queued" in record.reason
    assert record.deliveries == 1
    assert msgspec.json.decode(record.payload)["workflow_id"] == "wf4"
    app.exit()
    await task
