"""task-manager: folds workflow events into PostgreSQL and answers workflow queries."""

import asyncio

from faststream import FastStream

from aiop.contracts.subjects import QUERY_WORKFLOW
from aiop.servicekit import (
    DeliveryPolicy,
    ServiceSettings,
    durable_batch_consumer,
    make_broker,
    setup_tracing,
)
from aiop.servicekit.app import service_app
from aiop.task_manager.adapters.db import open_pool
from aiop.task_manager.adapters.outbox import Outbox
from aiop.task_manager.handlers import Handlers

SERVICE = "task-manager"
# Each fetch is folded in one transaction; the workflow row locks order it against the
# submissions consumer and other task-manager replicas.
POLICY = DeliveryPolicy(batch_size=128, max_ack_pending=1024)
# Folding is off the critical path (the submission's answer is not): lingering 20 ms
# between short fetches shares one transaction among more events.
FOLDING = DeliveryPolicy(batch_size=128, max_ack_pending=1024, linger=0.02)
# Every event task-manager folds, on one consumer, so one fetch holds a workflow's events
# in stream order and they share its transaction.
FOLDED = [
    "aiop.workflow.queued.v1.>",
    "aiop.workflow.requested.v1.>",
    "aiop.workflow.started.v1.>",
    "aiop.workflow.completed.v1.>",
    "aiop.workflow.failed.v1.>",
    "aiop.step.>",
]


class Settings(ServiceSettings):
    database_url: str  # AIOP_DATABASE_URL
    outbox_interval: float = 1.0  # seconds between relay passes
    outbox_grace: float = 1.0  # seconds the relay leaves a new row to the fast path


def build(settings: Settings) -> FastStream:
    provider = setup_tracing(SERVICE, settings.trace_dir)
    broker, _ = make_broker(SERVICE, settings.nats_url, provider)
    h = Handlers()
    durable_batch_consumer(broker, "aiop.workflow.submitted.v1.>", f"{SERVICE}-submitted",
                           policy=POLICY)(h.on_submitted)  # fmt: skip
    durable_batch_consumer(broker, FOLDED, f"{SERVICE}-events", policy=FOLDING)(h.on_event)

    async def start_relay() -> None:
        h.outbox.start()

    async def stop() -> None:
        await h.outbox.stop()
        await h.pool.close()

    app = service_app(
        SERVICE, broker, settings,
        endpoints={"get-workflow": (QUERY_WORKFLOW, h.get_workflow)},
        on_ready=start_relay, on_stop=stop,
    )  # fmt: skip

    @app.on_startup  # before the broker starts its consumers
    async def open_db() -> None:
        h.pool = await open_pool(settings.database_url)
        h.outbox = Outbox(
            h.pool, broker, interval=settings.outbox_interval, grace=settings.outbox_grace
        )

    return app


def run() -> None:
    asyncio.run(build(Settings()).run())  # type: ignore[call-arg]
