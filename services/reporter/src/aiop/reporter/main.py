"""reporter: folds workflow and step events into summaries (KV aiop_reports), answers
report queries, and dead-letters what JetStream advisories report lost."""

import asyncio

from aiop.contracts import events as ev
from aiop.contracts.endpoints import GET_REPORT
from aiop.contracts.subjects import KV_REPORTS, STREAM_EVENTS, STREAM_EXT, STREAM_LOGS
from aiop.reporter.adapters.advisories import MAX_DELIVERIES, MSG_TERMINATED, Advisory
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.handlers import Reporter
from aiop.servicekit import DeliveryPolicy, Service, ServiceSettings

# A fetch is folded into one compare-and-set per workflow, the workflows concurrently.
POLICY = DeliveryPolicy(max_deliver=10, ack_wait_s=30.0, max_ack_pending=1024)
# Every event the summaries fold, on one consumer, so a fetch holds a workflow's
# workflow and step events together in stream order and they cost one write. Requests
# to a pool are not part of a summary.
FOLDED: list[type[ev.WorkflowEvent]] = [
    ev.WorkflowSubmitted, ev.WorkflowAccepted, ev.WorkflowRejected, ev.WorkflowQueued,
    ev.WorkflowStarted, ev.WorkflowCompleted, ev.WorkflowFailed, ev.WorkflowCancelled,
    ev.StepStarted, ev.StepCompleted, ev.StepCached, ev.StepFailed, ev.StepSkipped,
]  # fmt: skip


class ReporterSettings(ServiceSettings):
    pass


def build(settings: ReporterSettings) -> Service:
    svc = Service("reporter", settings)
    store = ReportStore(lambda: svc.js, settings.stream_replicas)
    reporter = Reporter(store, svc.bus, lambda: svc.js)
    svc.publishes(ev.DeadLetterRecorded)
    svc.uses_bucket(KV_REPORTS)
    # Reports are off every workflow's critical path: lingering 20 ms between short
    # fetches folds most of a workflow's events into one write.
    svc.consume_batch(FOLDED, reporter.on_events, durable="reporter-events", policy=POLICY,
                      batch_size=128, linger_s=0.02)  # fmt: skip
    # Core NATS: advisories are not stored. The queue group gives each to one reporter.
    # An advisory names a stream message, which is read to record it whole.
    svc.reads(STREAM_EVENTS, STREAM_LOGS, STREAM_EXT)
    svc.listen(Advisory, reporter.on_advisory, subject=MAX_DELIVERIES, queue="reporter")
    svc.listen(Advisory, reporter.on_advisory, subject=MSG_TERMINATED, queue="reporter")
    svc.answer(GET_REPORT, reporter.get_report)
    svc.on_start(store.ready)  # the bucket exists before the first event or query
    return svc


def run() -> None:
    asyncio.run(build(ReporterSettings()).run())
