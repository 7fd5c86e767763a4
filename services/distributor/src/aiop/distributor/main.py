"""The distributor: executor registry from heartbeats, dispatch of accepted workflows."""

import asyncio

from faststream import FastStream

from aiop.contracts.events import (
    ExecutorHeartbeat,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowFailed,
)
from aiop.contracts.subjects import HEARTBEAT_ALL
from aiop.distributor.dispatcher import Distributor
from aiop.distributor.handlers import Handlers
from aiop.servicekit import (
    DeliveryPolicy,
    ServiceSettings,
    durable_consumer,
    make_broker,
    setup_tracing,
    typed,
)
from aiop.servicekit.app import service_app

SERVICE = "distributor"
# Handlers only touch KV: few in flight, quick retries.
POLICY = DeliveryPolicy(max_deliver=10, ack_wait=30.0, max_ack_pending=256)


class DistributorSettings(ServiceSettings):
    heartbeat_interval_s: float = 2.0  # executors' usual interval; sets the startup wait
    dispatch_tick_s: float = 0.25


def build_app(settings: DistributorSettings) -> FastStream:
    provider = setup_tracing(SERVICE, settings.trace_dir)
    broker, bus = make_broker(SERVICE, settings.nats_url, provider)
    distributor = Distributor(
        bus, settings.heartbeat_interval_s, settings.dispatch_tick_s, settings.stream_replicas
    )
    on = Handlers(distributor)
    # core NATS: stale liveness is worthless
    broker.subscriber(HEARTBEAT_ALL)(typed(ExecutorHeartbeat)(on.heartbeat))
    for what, event, handler in [
        ("accepted", WorkflowAccepted, on.accepted),
        ("completed", WorkflowCompleted, on.completed),
        ("failed", WorkflowFailed, on.failed),
    ]:
        durable_consumer(broker, f"{event.TYPE}.>", f"distributor-{what}", policy=POLICY)(
            typed(event)(handler)
        )  # type: ignore[arg-type]

    async def on_ready() -> None:
        await distributor.start(broker.connection.jetstream())

    return service_app(SERVICE, broker, settings, on_ready=on_ready, on_stop=distributor.stop)


def run() -> None:
    asyncio.run(build_app(DistributorSettings()).run())
