"""Webhooks as data: what is kept of one, what a delivery sends and how it is signed
(Standard Webhooks), and how attempts move a delivery and a webhook along. No I/O."""

import base64
import hashlib
import secrets
from datetime import UTC, datetime

import msgspec
from standardwebhooks.webhooks import Webhook as Signer

from aiop.contracts.events import WorkflowEvent
from aiop.contracts.webhooks import (
    DeliveryAttempt,
    DeliveryOrder,
    DeliveryState,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookIn,
    WebhookPatch,
    webhook_type,
)


class StoredWebhook(WebhookCreated, frozen=True, kw_only=True):
    """A webhook as KV ``aiop_webhooks`` keeps it, its secret included."""


class StoredDelivery(WebhookDelivery, frozen=True, kw_only=True):
    """A delivery as KV ``aiop_webhook_deliveries`` keeps it: with what was sent, so that
    it can be sent again."""

    project: str
    body: str


def now() -> datetime:
    return datetime.now(UTC)


def new_webhook(project: str, given: WebhookIn, created_by: str | None) -> StoredWebhook:
    at = now()
    return StoredWebhook(
        id="wh_" + secrets.token_hex(8), project=project, url=given.url,
        events=sorted({str(e) for e in given.events}), description=given.description,
        enabled=given.enabled, created_at=at, updated_at=at, created_by=created_by,
        # 24 random bytes, as the specification's whsec_<base64> form.
        secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )  # fmt: skip


def shown(hook: StoredWebhook) -> Webhook:
    """The webhook without its secret."""
    return Webhook(**{name: getattr(hook, name) for name in Webhook.__struct_fields__})


def created(hook: StoredWebhook) -> WebhookCreated:
    return WebhookCreated(
        **{name: getattr(hook, name) for name in WebhookCreated.__struct_fields__}
    )


def patched(hook: StoredWebhook, patch: WebhookPatch) -> StoredWebhook:
    """``hook`` changed as ``patch`` says. Enabling clears the failures and why it was
    disabled: it starts over."""
    changes: dict[str, object] = {"updated_at": now()}
    if patch.url is not None:
        changes["url"] = patch.url
    if patch.events is not None:
        changes["events"] = sorted({str(e) for e in patch.events})
    if patch.description is not None:
        changes["description"] = patch.description
    if patch.enabled is not None:
        changes["enabled"] = patch.enabled
        if patch.enabled:
            changes |= {"failures": 0, "disabled_reason": None}
    return msgspec.structs.replace(hook, **changes)


def succeeded(hook: StoredWebhook) -> StoredWebhook:
    return msgspec.structs.replace(hook, failures=0) if hook.failures else hook


def failed(hook: StoredWebhook, last: str, disable_after: int) -> StoredWebhook:
    """One more delivery given up on; at ``disable_after`` in a row the webhook is
    disabled, saying why."""
    count = hook.failures + 1
    if count < disable_after or not hook.enabled:
        return msgspec.structs.replace(hook, failures=count)
    reason = f"disabled after {count} consecutive failed deliveries (last: {last})"
    return msgspec.structs.replace(
        hook, failures=count, enabled=False, disabled_reason=reason, updated_at=now()
    )


def delivery_id(webhook_id: str, event_id: str) -> str:
    """One event's delivery to one webhook: the same however often the event comes."""
    digest = hashlib.sha256(f"{webhook_id}\n{event_id}".encode()).hexdigest()
    return f"msg_{digest[:26]}"


def payload(event: WorkflowEvent, project: str) -> str:
    """What a receiver gets: the type, when it happened, and the event's fields."""
    data = msgspec.to_builtins(event)
    data["project"] = project
    body = {"type": webhook_type(event.TYPE), "timestamp": event.occurred_at, "data": data}
    return msgspec.json.encode(body).decode()


def order(hook: StoredWebhook, event: WorkflowEvent) -> DeliveryOrder:
    return DeliveryOrder(
        delivery_id=delivery_id(hook.id, event.event_id), webhook_id=hook.id,
        project=hook.project, event_type=webhook_type(event.TYPE), event_id=event.event_id,
        workflow_id=event.workflow_id, body=payload(event, hook.project), created_at=now(),
    )  # fmt: skip


def signed_headers(secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: its id, time and signature."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, at, body),
    }


def attempted(
    old: StoredDelivery | None, given: DeliveryOrder, attempt: DeliveryAttempt,
    state: DeliveryState,
) -> StoredDelivery:  # fmt: skip
    """The delivery with one more attempt, in ``state``."""
    reason = None if state != "failed" else attempt.error
    base = old if old is not None and old.series == given.series else None
    attempts = [*(old.attempts if old is not None else []), attempt]
    if base is None:
        return StoredDelivery(
            id=given.delivery_id, webhook_id=given.webhook_id, event_type=given.event_type,
            event_id=given.event_id, workflow_id=given.workflow_id, state=state,
            created_at=old.created_at if old is not None else given.created_at,
            updated_at=attempt.at, attempts=attempts, reason=reason, series=given.series,
            project=given.project, body=given.body,
        )  # fmt: skip
    return msgspec.structs.replace(
        base, state=state, attempts=attempts, reason=reason, updated_at=attempt.at
    )


def dropped(old: StoredDelivery | None, given: DeliveryOrder, reason: str) -> StoredDelivery:
    """Given up on without an attempt: the webhook is disabled or gone."""
    at = now()
    if old is not None:
        return msgspec.structs.replace(old, state="failed", reason=reason, updated_at=at)
    return StoredDelivery(
        id=given.delivery_id, webhook_id=given.webhook_id, event_type=given.event_type,
        event_id=given.event_id, workflow_id=given.workflow_id, state="failed",
        created_at=given.created_at, updated_at=at, reason=reason, series=given.series,
        project=given.project, body=given.body,
    )  # fmt: skip


def done(record: StoredDelivery | None, given: DeliveryOrder) -> bool:
    """Whether ``given`` was settled already: the same delivery published twice, or a
    series a redelivery has replaced."""
    if record is None:
        return False
    return record.series > given.series or (
        record.series == given.series and record.state != "pending"
    )


def delivery_view(record: StoredDelivery) -> WebhookDelivery:
    return WebhookDelivery(
        **{name: getattr(record, name) for name in WebhookDelivery.__struct_fields__}
    )


def again(record: StoredDelivery) -> tuple[StoredDelivery, DeliveryOrder]:
    """A redelivery: a new series of attempts under the same ``webhook-id``."""
    series = record.series + 1
    at = now()
    renewed = msgspec.structs.replace(
        record, state="pending", reason=None, series=series, updated_at=at
    )
    sent = DeliveryOrder(
        delivery_id=record.id, webhook_id=record.webhook_id, project=record.project,
        event_type=record.event_type, event_id=record.event_id,
        workflow_id=record.workflow_id, body=record.body, created_at=at, series=series,
    )  # fmt: skip
    return renewed, sent
