"""The distributor against a real nats-server: dispatch, queueing, resends, restarts.

Executors are faked: heartbeats published on core NATS, claims written to KV.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from aiop.contracts import (
    Event,
    ExecutorHeartbeat,
    StepSpec,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowQueued,
    WorkflowRequested,
    WorkflowSpec,
)
from aiop.contracts.cancels import CancelRequest
from aiop.contracts.envelope import decode_event
from aiop.contracts.events import EVENT_TYPES, now
from aiop.contracts.subjects import KV_CANCELS, KV_CLAIMS, KV_DISPATCH
from aiop.distributor.domain.dispatch import DispatchState
from aiop.distributor.main import DistributorSettings, build
from aiop.servicekit import EventBus, open_bucket
from aiop.servicekit.rpc import wait_ready

pytestmark = pytest.mark.integration

INTERVAL = 0.2
E = TypeVar("E", bound=Event)
TIMEOUT = 5.0


class Distributor:
    """One in-process run of the service."""

    def __init__(self, nats_url: str) -> None:
        settings = DistributorSettings(nats_url=nats_url, heartbeat_interval_s=INTERVAL)
        self.app = build(settings)
        self.task: asyncio.Task[None] | None = None

    async def start(self, nc: Client) -> "Distributor":
        self.task = asyncio.create_task(self.app.run())
        await wait_ready(nc, "distributor", timeout=10)
        return self

    async def stop(self) -> None:
        self.app.exit()
        assert self.task is not None
        await self.task


class Executor:
    """A fake executor that heartbeats until stopped."""

    def __init__(self, nc: Client, executor_id: str, pool: str, caps: list[str]) -> None:
        self.hb = ExecutorHeartbeat(
            executor_id=executor_id, pool=pool, capabilities=caps, slots=2, interval_s=INTERVAL
        )
        self.nc = nc
        self.task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await self.nc.publish(self.hb.subject(), msgspec.json.encode(self.hb))
            await asyncio.sleep(INTERVAL)  # the heartbeat's own period, not a wait for an event

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def bus(nc: Client) -> AsyncIterator[EventBus]:
    """Publishes what the distributor's neighbours would."""
    yield EventBus("aiop/test", lambda: nc, set(EVENT_TYPES.values()))


@pytest.fixture
async def distributor(nats_url: str, nc: Client) -> AsyncIterator[Distributor]:
    service = await Distributor(nats_url).start(nc)
    yield service
    await service.stop()


def spec(*requires: str) -> WorkflowSpec:
    return WorkflowSpec(name="w", steps=[StepSpec(name="s", run=["true"])], requires=list(requires))


async def next_event(sub: Subscription, as_type: type[E], timeout: float = TIMEOUT) -> E:
    msg = await sub.next_msg(timeout=timeout)
    return decode_event(msg.data, as_type)


async def test_accepted_goes_to_live_capable_pool(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    small = Executor(nc, "e-small", "small", ["docker"])
    gpu = Executor(nc, "e-gpu", "gpu", ["docker", "gpu"])
    sub = await nc.subscribe("aiop.workflow.requested.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf1", spec=spec("gpu")))
    msg = await sub.next_msg(timeout=TIMEOUT)
    assert msg.subject == "aiop.workflow.requested.v1.gpu.wf1"
    requested = decode_event(msg.data, WorkflowRequested)
    assert (requested.pool, requested.attempt, requested.spec) == ("gpu", 1, spec("gpu"))
    await small.stop()
    await gpu.stop()


async def test_no_executor_queues_then_dispatches_when_one_appears(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    queued = await nc.subscribe("aiop.workflow.queued.v1.>")
    requested = await nc.subscribe("aiop.workflow.requested.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf2", spec=spec("gpu")))
    assert (await next_event(queued, WorkflowQueued)).reason == "no executor is connected"

    cpu = Executor(nc, "e-cpu", "cpu", ["docker"])
    event = await next_event(queued, WorkflowQueued)
    assert event.reason == "no live executor offers capabilities [gpu]"

    gpu = Executor(nc, "e-gpu", "gpu", ["gpu"])
    event_r = await next_event(requested, WorkflowRequested)
    assert (event_r.workflow_id, event_r.pool) == ("wf2", "gpu")
    with pytest.raises(nats.errors.TimeoutError):  # each reason is said once
        await queued.next_msg(timeout=3 * INTERVAL)
    await cpu.stop()
    await gpu.stop()


async def claim(nc: Client, key: str, executor_id: str) -> None:
    kv = await open_bucket(nc.jetstream(), KV_CLAIMS)
    await kv.create(key, executor_id.encode())


async def test_dead_claimant_gets_its_workflow_resent(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    doomed = Executor(nc, "e1", "p", [])
    requested = await nc.subscribe("aiop.workflow.requested.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf3", spec=spec()))
    assert (await next_event(requested, WorkflowRequested)).attempt == 1
    await claim(nc, "wf3.a1", "e1")
    survivor = Executor(nc, "e2", "p", [])
    await doomed.stop()

    resent = await next_event(requested, WorkflowRequested)
    assert (resent.workflow_id, resent.attempt, resent.pool) == ("wf3", 2, "p")
    kv = await open_bucket(nc.jetstream(), KV_DISPATCH)
    stored = msgspec.json.decode((await kv.get("wf3")).value)
    assert (stored["attempt"], stored["state"]) == (2, "dispatched")
    await survivor.stop()


async def test_completed_workflow_is_never_resent(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    doomed = Executor(nc, "e1", "p", [])
    survivor = Executor(nc, "e2", "p", [])
    requested = await nc.subscribe("aiop.workflow.requested.v1.>")
    kv = await open_bucket(nc.jetstream(), KV_DISPATCH)
    await bus.publish(WorkflowAccepted(workflow_id="wf4", spec=spec()))
    await next_event(requested, WorkflowRequested)
    await claim(nc, "wf4.a1", "e1")

    watcher = await kv.watch("wf4")
    await bus.publish(WorkflowCompleted(workflow_id="wf4", executor_id="e1"))
    while (entry := await watcher.updates(TIMEOUT)) is None or entry.operation != "DEL":
        pass
    await watcher.stop()
    await doomed.stop()
    with pytest.raises(nats.errors.TimeoutError):  # e1 died after finishing: nothing to resend
        await requested.next_msg(timeout=6 * INTERVAL)

    # A redelivered accepted for a finished workflow does not revive it.
    await bus.publish(WorkflowAccepted(workflow_id="wf4", spec=spec()))
    with pytest.raises(nats.errors.TimeoutError):
        await requested.next_msg(timeout=3 * INTERVAL)
    await survivor.stop()


async def test_restart_keeps_pending_workflows(nats_url: str, nc: Client, bus: EventBus) -> None:
    first = await Distributor(nats_url).start(nc)
    queued = await nc.subscribe("aiop.workflow.queued.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf5", spec=spec()))
    await next_event(queued, WorkflowQueued)
    await first.stop()

    requested = await nc.subscribe("aiop.workflow.requested.v1.>")
    second = await Distributor(nats_url).start(nc)
    executor = Executor(nc, "e1", "p", [])
    event = await next_event(requested, WorkflowRequested)
    assert (event.workflow_id, event.attempt) == ("wf5", 1)
    # The restarted distributor remembers the reason it already gave.
    with pytest.raises(nats.errors.TimeoutError):
        await queued.next_msg(timeout=0.1)
    await executor.stop()
    await second.stop()


async def test_accepted_adopts_a_dispatch_state_whose_write_reply_was_lost(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    """NATS restarting mid-request can store the first KV write yet lose its reply; the
    accepted event then comes again and finds the key taken. It must dispatch the stored
    workflow, not leave it in KV forever."""
    kv = await open_bucket(nc.jetstream(), KV_DISPATCH)
    await kv.create("wf6", msgspec.json.encode(DispatchState(spec=spec())))
    executor = Executor(nc, "e1", "p", [])
    requested = await nc.subscribe("aiop.workflow.requested.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf6", spec=spec()))
    event = await next_event(requested, WorkflowRequested)
    assert (event.workflow_id, event.attempt, event.pool) == ("wf6", 1, "p")
    await executor.stop()


async def ask_cancel(nc: Client, workflow_id: str) -> None:
    kv = await nc.jetstream().key_value(KV_CANCELS)
    request = CancelRequest(principal="bob", requested_at=now(), reason="not needed any more")
    await kv.create(workflow_id, msgspec.json.encode(request))


async def test_a_queued_workflow_is_cancelled_here(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    queued = await nc.subscribe("aiop.workflow.queued.v1.wf-q")
    cancelled = await nc.subscribe("aiop.workflow.cancelled.v1.wf-q")
    await bus.publish(WorkflowAccepted(workflow_id="wf-q", spec=spec("gpu")))
    await next_event(queued, WorkflowQueued)
    await ask_cancel(nc, "wf-q")
    event = await next_event(cancelled, WorkflowCancelled)
    assert (event.executor_id, event.cancelled_by, event.reason) == (
        None, "bob", "not needed any more",
    )  # fmt: skip
    # It is forgotten: an executor that turns up now gets no request for it.
    requested = await nc.subscribe("aiop.workflow.requested.v1.*.wf-q")
    gpu = Executor(nc, "e-late", "late", ["gpu"])
    with pytest.raises(nats.errors.TimeoutError):
        await requested.next_msg(timeout=1.5)
    await gpu.stop()


async def test_a_sent_but_unclaimed_request_is_claimed_and_cancelled(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    busy = Executor(nc, "e-busy", "busy", [])  # alive, but never claims
    requested = await nc.subscribe("aiop.workflow.requested.v1.busy.wf-u")
    cancelled = await nc.subscribe("aiop.workflow.cancelled.v1.wf-u")
    await bus.publish(WorkflowAccepted(workflow_id="wf-u", spec=spec()))
    await requested.next_msg(timeout=TIMEOUT)
    await ask_cancel(nc, "wf-u")
    assert (await next_event(cancelled, WorkflowCancelled)).executor_id is None
    claims = await nc.jetstream().key_value(KV_CLAIMS)
    assert (await claims.get("wf-u.a1")).value == b"cancelled"  # no executor can take it now
    await busy.stop()


async def test_a_running_workflow_is_left_to_its_executor(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    runner = Executor(nc, "e-run", "run", [])
    requested = await nc.subscribe("aiop.workflow.requested.v1.run.wf-r")
    cancelled = await nc.subscribe("aiop.workflow.cancelled.v1.>")
    await bus.publish(WorkflowAccepted(workflow_id="wf-r", spec=spec()))
    await requested.next_msg(timeout=TIMEOUT)
    claims = await nc.jetstream().key_value(KV_CLAIMS)
    await claims.create("wf-r.a1", b"e-run")
    await ask_cancel(nc, "wf-r")
    with pytest.raises(nats.errors.TimeoutError):
        await cancelled.next_msg(timeout=1.0)  # its executor stops it and says so
    await runner.stop()


async def test_a_workflow_cancelled_before_it_arrives_is_never_sent(
    distributor: Distributor, nc: Client, bus: EventBus
) -> None:
    ready = Executor(nc, "e-ready", "ready", [])
    cancelled = await nc.subscribe("aiop.workflow.cancelled.v1.wf-early")
    requested = await nc.subscribe("aiop.workflow.requested.v1.*.wf-early")
    await ask_cancel(nc, "wf-early")
    await bus.publish(WorkflowAccepted(workflow_id="wf-early", spec=spec()))
    assert (await next_event(cancelled, WorkflowCancelled)).attempt == 1
    with pytest.raises(nats.errors.TimeoutError):
        await requested.next_msg(timeout=0.5)
    await ready.stop()
