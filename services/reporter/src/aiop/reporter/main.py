"""reporter: folds workflow and step events into summaries (KV aiop_reports), answers
report queries, dead-letters what JetStream advisories report lost, and delivers the
events to webhooks."""

import asyncio

from aiop.contracts import events as ev
from aiop.contracts.endpoints import (
    CREATE_WEBHOOK,
    DELETE_WEBHOOK,
    GET_REPORT,
    GET_WEBHOOK,
    LIST_DELIVERIES,
    LIST_WEBHOOKS,
    REDELIVER,
    UPDATE_WEBHOOK,
)
from aiop.contracts.subjects import (
    KV_REPORTS,
    KV_WEBHOOK_DELIVERIES,
    KV_WEBHOOKS,
    STREAM_EVENTS,
    STREAM_EXT,
    STREAM_LOGS,
)
from aiop.contracts.webhooks import DELIVERY_SUBJECTS, DeliveryOrder
from aiop.reporter.adapters.advisories import MAX_DELIVERIES, MSG_TERMINATED, Advisory
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.adapters.webhooks import DeliveryStore, WebhookStore
from aiop.reporter.handlers import Reporter
from aiop.reporter.webhooks import Delivering, Webhooks, read_order
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
    # Webhook deliveries (docs/webhooks.md): the seconds between one attempt and the
    # next, comma-separated (the last repeats); attempts in all; failed deliveries in a
    # row that disable a webhook; how long one attempt may take.
    webhook_backoff_s: str = "1,5,30,120,600"
    webhook_attempts: int = 6
    webhook_disable_after: int = 5
    webhook_timeout_s: float = 10.0
    webhook_workers: int = 16

    def webhook_policy(self) -> DeliveryPolicy:
        """The delivery consumer's: its NAK delays are the backoff. Two deliveries beyond
        the attempts, so that a bus failure after the last attempt settles it rather than
        dead-letters it; the ack wait well above one attempt's timeout."""
        backoff = tuple(float(s) for s in self.webhook_backoff_s.split(",") if s.strip())
        return DeliveryPolicy(max_deliver=self.webhook_attempts + 2,
                              ack_wait_s=self.webhook_timeout_s + 30.0,
                              max_ack_pending=1000, nak_delays_s=backoff or (1.0,))  # fmt: skip


def build(settings: ReporterSettings) -> Service:
    svc = Service("reporter", settings)
    store = ReportStore(lambda: svc.js, settings.stream_replicas)
    how = Delivering(attempts=settings.webhook_attempts,
                     disable_after=settings.webhook_disable_after,
                     timeout_s=settings.webhook_timeout_s)  # fmt: skip
    webhooks = Webhooks(WebhookStore(lambda: svc.js, settings.stream_replicas),
                        DeliveryStore(lambda: svc.js, settings.stream_replicas), svc.send, how)  # fmt: skip
    reporter = Reporter(store, svc.bus, lambda: svc.js, webhooks)
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
    # Webhooks: kept here, fanned out from the fold above, delivered from AIOP_WEBHOOKS.
    svc.uses_bucket(KV_WEBHOOKS, KV_WEBHOOK_DELIVERIES)
    svc.publishes_to(DELIVERY_SUBJECTS, DeliveryOrder)
    svc.consume_messages(DELIVERY_SUBJECTS, DeliveryOrder, read_order, webhooks.deliver,
                         durable="reporter-webhooks", policy=settings.webhook_policy(),
                         workers=settings.webhook_workers)  # fmt: skip
    svc.answer(CREATE_WEBHOOK, webhooks.create)
    svc.answer(UPDATE_WEBHOOK, webhooks.update)
    svc.answer(GET_WEBHOOK, webhooks.get)
    svc.answer(LIST_WEBHOOKS, webhooks.list)
    svc.answer(DELETE_WEBHOOK, webhooks.delete)
    svc.answer(LIST_DELIVERIES, webhooks.list_deliveries)
    svc.answer(REDELIVER, webhooks.redeliver)
    svc.on_start(webhooks.open)  # the webhooks in memory before the first fold
    svc.on_stop(webhooks.close)
    return svc


def run() -> None:
    asyncio.run(build(ReporterSettings()).run())
