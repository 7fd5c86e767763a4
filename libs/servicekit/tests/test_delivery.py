"""The delivery policy against a real nats-server: retries, dead letters, no loss."""

import asyncio

import msgspec
import pytest
from nats.aio.client import Client

from aiop.contracts import DeadLetterRecorded, WorkflowQueued, WorkflowStarted
from aiop.contracts.envelope import decode_event, encode_event
from aiop.servicekit import DeliveryPolicy, Permanent, Service, ServiceSettings

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(max_deliver=3, nak_delays_s=(0.01, 0.01, 0.01), ack_wait_s=5)


async def dead_letters(nc: Client, count: int = 1) -> list[DeadLetterRecorded]:
    """The first ``count`` records of the dead-letter stream."""
    sub = await nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
    try:
        return [
            decode_event((await sub.next_msg(timeout=10)).data, DeadLetterRecorded)
            for _ in range(count)
        ]
    finally:
        await sub.unsubscribe()


async def test_transient_failure_is_retried_then_handled(
    settings: ServiceSettings, running
) -> None:  # type: ignore[no-untyped-def]
    svc = Service("test", settings)
    svc.publishes(WorkflowQueued)
    tries: list[str] = []
    done = asyncio.Event()

    async def handler(event: WorkflowQueued) -> None:
        tries.append(event.reason)
        if len(tries) < 2:
            raise ConnectionError("database briefly away")
        done.set()

    svc.consume(WorkflowQueued, handler, durable="retry", policy=FAST)
    async with running(svc):
        await svc.bus.publish(WorkflowQueued(workflow_id="wf1", reason="test"))
        await asyncio.wait_for(done.wait(), 10)
    assert tries == ["test", "test"]


async def test_poison_and_foreign_messages_are_dead_lettered(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    svc = Service("test", settings)
    svc.publishes(WorkflowQueued)
    handled = asyncio.Event()

    async def handler(event: WorkflowQueued) -> None:
        handled.set()

    svc.consume(WorkflowQueued, handler, durable="poison", policy=FAST)
    async with running(svc):
        js = nc.jetstream()
        await js.publish("aiop.workflow.queued.v1.wf2", b"{not json", stream="AIOP")
        # A message whose type is not the consumer's (here by its ce-type header) is not
        # handed to the handler as if it were.
        env = encode_event(WorkflowStarted(workflow_id="wf3", executor_id="x"), "test")
        await js.publish("aiop.workflow.queued.v1.wf3", env.body, headers=env.headers)
        poison, record = await dead_letters(nc, 2)
        assert poison.original_subject == "aiop.workflow.queued.v1.wf2"
        assert poison.payload == b"{not json"
        assert poison.consumer == "poison"
        assert record.original_subject == "aiop.workflow.queued.v1.wf3"
        assert "poison does not take" in record.reason
        # The consumer keeps working after both.
        await svc.bus.publish(WorkflowQueued(workflow_id="wf4", reason="fine"))
        await asyncio.wait_for(handled.wait(), 10)


async def test_permanent_failure_records_its_reason(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    svc = Service("test", settings)
    svc.publishes(WorkflowQueued)

    async def handler(event: WorkflowQueued) -> None:
        raise Permanent("this workflow can never be queued")

    svc.consume(WorkflowQueued, handler, durable="perm", policy=FAST)
    async with running(svc):
        await svc.bus.publish(WorkflowQueued(workflow_id="wf5", reason="never"))
        (record,) = await dead_letters(nc)
    assert "can never be queued" in record.reason
    assert record.deliveries == 1
    assert msgspec.json.decode(record.payload)["workflow_id"] == "wf5"
