"""The distributor: executor registry from heartbeats, dispatch of accepted workflows."""

import asyncio

from aiop.contracts.events import (
    ExecutorHeartbeat,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowQueued,
    WorkflowRequested,
)
from aiop.contracts.subjects import KV_CANCELS, KV_CLAIMS, KV_DISPATCH
from aiop.distributor.dispatcher import Distributor
from aiop.distributor.handlers import Handlers
from aiop.servicekit import DeliveryPolicy, Service, ServiceSettings

# Handlers only touch KV: quick retries. They queue on the dispatcher's lock, so a few
# workers only let one fetch bring several messages under load.
POLICY = DeliveryPolicy(max_deliver=10, ack_wait_s=30.0, max_ack_pending=256)
WORKERS = 8


class DistributorSettings(ServiceSettings):
    heartbeat_interval_s: float = 2.0  # executors' usual interval; sets the startup wait
    dispatch_tick_s: float = 0.25


def build(settings: DistributorSettings) -> Service:
    svc = Service("distributor", settings)
    distributor = Distributor(
        svc.bus, lambda: svc.nc, settings.heartbeat_interval_s, settings.dispatch_tick_s,
        settings.stream_replicas,
    )  # fmt: skip
    on = Handlers(distributor)
    svc.publishes(WorkflowRequested, WorkflowQueued, WorkflowCancelled)
    # Its dispatch state; the executors' claims; cancel requests (watched).
    svc.uses_bucket(KV_DISPATCH, KV_CLAIMS, KV_CANCELS)
    svc.consume(WorkflowAccepted, on.accepted, durable="distributor-accepted",
                policy=POLICY, workers=WORKERS)  # fmt: skip
    svc.consume(WorkflowCompleted, on.finished, durable="distributor-completed",
                policy=POLICY, workers=WORKERS)  # fmt: skip
    svc.consume(WorkflowFailed, on.finished, durable="distributor-failed",
                policy=POLICY, workers=WORKERS)  # fmt: skip
    svc.consume(WorkflowCancelled, on.finished, durable="distributor-cancelled",
                policy=POLICY, workers=WORKERS)  # fmt: skip
    svc.listen(ExecutorHeartbeat, on.heartbeat)  # core NATS: stale liveness is worthless
    svc.on_start(lambda: distributor.start(svc.js))  # the dispatch table, before any event
    svc.on_stop(distributor.stop)
    return svc


def run() -> None:
    asyncio.run(build(DistributorSettings()).run())
