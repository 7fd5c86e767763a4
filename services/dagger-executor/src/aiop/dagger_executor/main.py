"""The executor service: settings, broker, its one subscription, heartbeat, app."""

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from typing import Literal

from faststream import FastStream

from aiop.contracts import WorkflowRequested, check_token
from aiop.dagger_executor.adapters.publisher import RetryingPublisher
from aiop.dagger_executor.adapters.selection import select_runner
from aiop.dagger_executor.domain.naming import executor_id
from aiop.dagger_executor.executor import Executor, Identity
from aiop.dagger_executor.run import RunContext
from aiop.servicekit import (
    DeliveryPolicy,
    ServiceSettings,
    durable_consumer,
    make_broker,
    typed,
)
from aiop.servicekit import setup_tracing as tracing
from aiop.servicekit.app import configure_logging, service_app

SERVICE = "dagger-executor"


class ExecutorSettings(ServiceSettings):
    pool: str = "default"
    capabilities: list[str] = ["local"]  # "dagger" is added when an engine is reachable
    slots: int = 8
    heartbeat_interval: float = 1.0
    work_dir: Path = Path(tempfile.gettempdir()) / "aiop-work"
    runner: Literal["auto", "local", "dagger"] = "auto"


def build_app(settings: ExecutorSettings) -> FastStream:
    pool = check_token(settings.pool, "pool")
    configure_logging(settings, SERVICE)
    runner, _ = select_runner(settings.runner)
    broker, bus = make_broker(SERVICE, settings.nats_url, tracing(SERVICE, settings.trace_dir))
    me = executor_id(pool, socket.gethostname(), os.getpid())
    caps = sorted({*settings.capabilities, *(["dagger"] if runner.name == "dagger" else [])})
    identity = Identity(me, pool, caps, settings.slots, settings.heartbeat_interval)
    ctx = RunContext(me, runner, RetryingPublisher(bus), settings.work_dir)
    executor = Executor(identity, bus, ctx, lambda: broker.connection.jetstream(),
                        settings.stream_replicas)  # fmt: skip

    # Every executor of the pool shares one durable, so each request goes to one of them;
    # max_ack_pending near the slot count keeps one executor from hoarding requests.
    policy = DeliveryPolicy(max_deliver=30, ack_wait=30.0, max_ack_pending=settings.slots,
                            batch_size=1, nak_delays=(0.5, 1.0, 2.0, 5.0))  # fmt: skip

    @durable_consumer(broker, f"aiop.workflow.requested.v1.{pool}.>", f"executor-{pool}",
                      policy=policy)  # fmt: skip
    @typed(WorkflowRequested)
    async def on_requested(event: WorkflowRequested) -> None:
        await executor.on_requested(event)

    app = service_app(SERVICE, broker, settings, on_stop=executor.stop)
    app.on_startup(executor.start)  # after service_app's own hook has connected the broker
    return app


def run() -> None:
    asyncio.run(build_app(ExecutorSettings()).run())
