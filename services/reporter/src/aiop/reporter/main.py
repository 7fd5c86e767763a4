"""reporter: folds workflow and step events into summaries (KV aiop_reports), answers
``aiop.query.report.get.v1``, and dead-letters what JetStream advisories report lost."""

from faststream import FastStream
from faststream.nats.annotations import NatsMessage

from aiop.contracts.subjects import QUERY_REPORT
from aiop.reporter.adapters.advisories import MAX_DELIVERIES, MSG_TERMINATED
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.handlers import Reporter
from aiop.servicekit import DeliveryPolicy, ServiceSettings, durable_batch_consumer, make_broker
from aiop.servicekit.app import service_app
from aiop.servicekit.rpc import Handler
from aiop.servicekit.telemetry import setup_tracing

SERVICE = "reporter"
# A fetch is folded into one compare-and-set per workflow, the workflows concurrently.
# Reports are off every workflow's critical path: lingering 20 ms between short fetches
# folds most of a workflow's events into one write.
POLICY = DeliveryPolicy(
    max_deliver=10, ack_wait=30.0, max_ack_pending=1024, batch_size=128, linger=0.02
)


def build_app(settings: ServiceSettings) -> FastStream:
    broker, bus = make_broker(
        SERVICE, settings.nats_url, setup_tracing(SERVICE, settings.trace_dir)
    )
    store = ReportStore(lambda: broker.connection.jetstream(), settings.stream_replicas)
    reporter = Reporter(store, bus)

    async def on_advisory(msg: NatsMessage) -> None:
        await reporter.on_advisory(msg.raw_message)

    # One consumer for both, so a fetch holds a workflow's workflow and step events
    # together and they cost one write.
    durable_batch_consumer(broker, ["aiop.workflow.>", "aiop.step.>"], "reporter-events",
                           policy=POLICY)(reporter.on_events)  # fmt: skip
    # Core NATS: advisories are not stored. The queue group gives each to one reporter.
    broker.subscriber(MAX_DELIVERIES, queue=SERVICE)(on_advisory)
    broker.subscriber(MSG_TERMINATED, queue=SERVICE)(on_advisory)
    endpoints: dict[str, tuple[str, Handler]] = {"report": (QUERY_REPORT, reporter.get_report)}
    # The bucket exists before the service answers pings, even before the first event.
    return service_app(SERVICE, broker, settings, endpoints=endpoints, on_ready=store.ready)


def main() -> None:
    import asyncio

    asyncio.run(build_app(ServiceSettings()).run())
