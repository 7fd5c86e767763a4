"""The distributor: executor registry from heartbeats, dispatch of accepted workflows."""

import asyncio

from faststream import FastStream

from aiop.contracts.subjects import HEARTBEAT_ALL
from aiop.distributor.dispatcher import Distributor
from aiop.distributor.handlers import Handlers
from aiop.servicekit import (
    DeliveryPolicy,
    ServiceSettings,
    durable_consumer,
    make_broker,
    setup_tracing,
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
    broker.subscriber(HEARTBEAT_ALL)(on.heartbeat)  # core NATS: stale liveness is worthless
    durable_consumer(broker, "aiop.workflow.accepted.v1.>", "distributor-accepted", policy=POLICY)(
        on.accepted
    )
    durable_consumer(
        broker, "aiop.workflow.completed.v1.>", "distributor-completed", policy=POLICY
    )(on.completed)
    durable_consumer(broker, "aiop.workflow.failed.v1.>", "distributor-failed", policy=POLICY)(
        on.failed
    )

    async def on_ready() -> None:
        await distributor.start(broker.connection.jetstream())

    return service_app(SERVICE, broker, settings, on_ready=on_ready, on_stop=distributor.stop)


def run() -> None:
    asyncio.run(build_app(DistributorSettings()).run())
