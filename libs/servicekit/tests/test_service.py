"""What a Service records of its registrations, and what it refuses, with no server:
listeners run in memory through FastStream's test broker."""

import msgspec
import pytest
from faststream.nats import TestNatsBroker

from aiop.contracts import ExecutorHeartbeat, WorkflowAccepted, WorkflowQueued, WorkflowRequested
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.events import DeadLetterRecorded
from aiop.servicekit import Service, ServiceSettings, UndeclaredEvent
from aiop.servicekit.traffic import Action

BEAT = ExecutorHeartbeat(executor_id="x1", pool="default", capabilities=["local"], slots=2)


async def nothing(event: object) -> None:
    return None


def test_registrations_are_recorded_as_traffic() -> None:
    svc = Service("demo", ServiceSettings())
    svc.publishes(WorkflowQueued)
    svc.consume(WorkflowRequested, nothing, durable="demo-requested", tokens={"pool": "gpu"})
    svc.listen(ExecutorHeartbeat, nothing)
    svc.answer(GET_WORKFLOW, nothing)
    seen = {(t.action, t.subject, t.durable) for t in svc.traffic}
    assert seen == {
        (Action.PUBLISH, "aiop.workflow.queued.v1", None),
        (Action.CONSUME, "aiop.workflow.requested.v1.gpu.>", "demo-requested"),
        # A consumer may dead-letter, so the service publishes dead letters too.
        (Action.PUBLISH, "aiop.dlq.recorded.v1", None),
        (Action.LISTEN, "aiop.executor.heartbeat.v1.>", None),
        (Action.ANSWER, "aiop.query.workflow.get.v1", None),
    }


def test_a_consumer_reads_one_stream() -> None:
    svc = Service("demo", ServiceSettings())
    with pytest.raises(ValueError, match="not all stored in one stream"):
        svc.consume([WorkflowAccepted, DeadLetterRecorded], nothing, durable="mixed")


async def test_an_undeclared_publish_is_refused_before_it_is_sent() -> None:
    svc = Service("demo", ServiceSettings(nats_url="nats://127.0.0.1:1"))  # never connected
    with pytest.raises(UndeclaredEvent, match=r"aiop\.workflow\.queued\.v1"):
        await svc.bus.publish(WorkflowQueued(workflow_id="wf1", reason="nope"))
    with pytest.raises(UndeclaredEvent, match=r"aiop\.query\.workflow\.get\.v1"):
        await svc.ask(GET_WORKFLOW, {"workflow_id": "wf1"})


async def test_a_listener_gets_decoded_values_and_skips_undecodable_ones() -> None:
    svc = Service("demo", ServiceSettings())
    beats: list[ExecutorHeartbeat] = []

    async def on_beat(beat: ExecutorHeartbeat) -> None:
        beats.append(beat)

    svc.listen(ExecutorHeartbeat, on_beat)
    async with TestNatsBroker(svc.broker) as broker:
        await broker.publish(b"{not json", BEAT.subject())
        await broker.publish(msgspec.json.encode(BEAT), BEAT.subject())
    assert beats == [BEAT]
