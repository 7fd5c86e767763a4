"""Webhooks: a project's URLs that workflow and step events are delivered to, signed as
the Standard Webhooks specification says (docs/webhooks.md). The reporter keeps them and
delivers; the gateway asks it over request/reply.

An event type a webhook subscribes to is the event's TYPE without ``aiop.`` and its
version: ``aiop.workflow.completed.v1`` is ``workflow.completed``.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from aiop.contracts import events as ev

# What a webhook can subscribe to: every event the reporter folds.
_DELIVERABLE: tuple[type[ev.WorkflowEvent], ...] = (
    ev.WorkflowSubmitted, ev.WorkflowAccepted, ev.WorkflowRejected, ev.WorkflowQueued,
    ev.WorkflowStarted, ev.WorkflowCompleted, ev.WorkflowFailed, ev.WorkflowCancelled,
    ev.StepStarted, ev.StepCompleted, ev.StepCached, ev.StepFailed, ev.StepSkipped,
)  # fmt: skip


def webhook_type(event_type: str) -> str:
    """``aiop.workflow.completed.v1`` -> ``workflow.completed``."""
    return event_type.removeprefix("aiop.").rsplit(".", 1)[0]


WEBHOOK_EVENTS: dict[str, type[ev.WorkflowEvent]] = {
    webhook_type(cls.TYPE): cls for cls in _DELIVERABLE
}
# Deliveries travel on stream AIOP_WEBHOOKS, one subject per webhook.
DELIVERY_SUBJECTS = "aiop.webhook.delivery.v1.>"
MAX_URL = 2048
MAX_DESCRIPTION = 1000
MAX_DELIVERIES = 200  # in one listing
DeliveryState = Literal["pending", "delivered", "failed"]

# The types by name, for the API's schema and its decoding; they are the names above.
EventType = Literal[
    "workflow.submitted", "workflow.accepted", "workflow.rejected", "workflow.queued",
    "workflow.started", "workflow.completed", "workflow.failed", "workflow.cancelled",
    "step.started", "step.completed", "step.cached", "step.failed", "step.skipped",
]  # fmt: skip
assert set(get_args(EventType)) == WEBHOOK_EVENTS.keys()

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL, pattern=r"^https?://[^/?#\s]+")]
EventTypes = Annotated[list[EventType], msgspec.Meta(min_length=1)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]


class WebhookIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/webhooks``."""

    url: Url  # http or https, with a host
    events: EventTypes  # e.g. ["workflow.completed", "workflow.failed"]
    description: Description = ""
    enabled: bool = True


class WebhookPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PATCH /v1/webhooks/{id}``: what changes; the rest stays.
    ``enabled: true`` re-enables a webhook disabled after failures."""

    url: Url | None = None
    events: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


def check_webhook(url: str | None, events: Sequence[str] | None) -> list[str]:
    """What is wrong with a webhook's URL and event types, in words; [] if nothing."""
    problems = []
    if url is not None:
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018  # raises for a port that is not one
        except ValueError:  # an unbalanced "[", a port out of range
            usable = False
        if not usable:
            problems.append(f"url {url[:100]!r} must be an http or https URL with a host")
    if events is not None:
        if not events:
            problems.append("events must name at least one event type")
        unknown = sorted(set(events) - WEBHOOK_EVENTS.keys())
        if unknown:
            problems.append(f"unknown event types {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(WEBHOOK_EVENTS))}")  # fmt: skip
    return problems


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook as shown: never its secret."""

    id: str
    project: str
    url: str
    events: list[str]
    created_at: datetime
    updated_at: datetime
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None  # why the platform disabled it, if it did
    failures: int = 0  # deliveries failed in a row; a success resets it
    created_by: str | None = None


class WebhookCreated(Webhook, frozen=True, kw_only=True):
    """A new webhook and its signing secret, ``whsec_<base64>``: shown this once."""

    secret: str


class WebhookList(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    webhooks: list[Webhook]


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST to the webhook's URL."""

    at: datetime
    duration_s: float
    status: int | None = None  # the HTTP status it answered
    error: str | None = None  # why it failed, when no 2xx came back


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event for one webhook, and every attempt to deliver it. ``id`` is the
    ``webhook-id`` header of every attempt."""

    id: str
    webhook_id: str
    event_type: str  # workflow.completed
    event_id: str
    workflow_id: str
    state: DeliveryState
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttempt] = []
    reason: str | None = None  # why it failed or was dropped
    series: int = 0  # 0 the first delivery; each redelivery starts a new series


class DeliveryList(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: str
    deliveries: list[WebhookDelivery]  # newest first


# -- request/reply between the gateway and the reporter ---------------------------------


class NewWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """``aiop.webhooks.create.v1``."""

    project: str
    webhook: WebhookIn
    created_by: str | None = None


class WebhookChange(msgspec.Struct, frozen=True, kw_only=True):
    """``aiop.webhooks.update.v1``."""

    project: str
    id: str
    patch: WebhookPatch


class WebhookRef(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    id: str


class WebhooksQuery(msgspec.Struct, frozen=True, kw_only=True):
    project: str


class DeliveriesQuery(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    id: str
    limit: int = 50


class DeliveryRef(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    id: str
    delivery_id: str


# -- on the bus -------------------------------------------------------------------------


class DeliveryOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One delivery to make, on ``aiop.webhook.delivery.v1.<webhook id>`` (stream
    AIOP_WEBHOOKS), published by the reporter's fan-out or a redelivery. ``body`` is
    the JSON payload as it is signed and sent."""

    delivery_id: str
    webhook_id: str
    project: str
    event_type: str
    event_id: str
    workflow_id: str
    body: str
    created_at: datetime
    series: int = 0
    # Not sent: the consumer sets it from the message's delivery count.
    attempt: int = 0


def delivery_subject(webhook_id: str) -> str:
    return f"aiop.webhook.delivery.v1.{webhook_id}"
