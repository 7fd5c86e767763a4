"""Webhooks: kept for the gateway (request/reply), fanned out from the folded events,
and delivered by a durable consumer of stream AIOP_WEBHOOKS (docs/webhooks.md).

A delivery is a message first, an HTTP request second: the fan-out publishes one per
event and webhook with ``Nats-Msg-Id`` ``<webhook id>.<event id>``, so an event the
reporter folds twice is delivered once; the consumer's NAK delays are the backoff
between attempts. A receiver that keeps failing is no failure of the bus: after the
last attempt the delivery is recorded failed and acked, never dead-lettered.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
import msgspec
from nats.aio.msg import Msg

from aiop.contracts.events import WorkflowEvent
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.contracts.webhooks import (
    MAX_DELIVERIES,
    DeliveriesQuery,
    DeliveryAttempt,
    DeliveryList,
    DeliveryOrder,
    DeliveryRef,
    DeliveryState,
    NewWebhook,
    Webhook,
    WebhookChange,
    WebhookCreated,
    WebhookDelivery,
    WebhookList,
    WebhookRef,
    WebhooksQuery,
    check_webhook,
    delivery_subject,
    webhook_type,
)
from aiop.reporter.adapters.webhooks import (
    DeliveryStore,
    WebhookStore,
    delivery_key,
    webhook_key,
)
from aiop.reporter.domain import webhooks as domain
from aiop.reporter.domain.webhooks import StoredDelivery, StoredWebhook
from aiop.servicekit import Permanent
from aiop.servicekit.rpc import QueryFailed

log = logging.getLogger("aiop.reporter.webhooks")

Send = Callable[[str, bytes, dict[str, str]], Awaitable[None]]
_order = msgspec.json.Decoder(DeliveryOrder)


@dataclass(frozen=True)
class Delivering:
    """How deliveries are tried (ReporterSettings)."""

    attempts: int = 6
    disable_after: int = 5
    timeout_s: float = 10.0


class DeliveryFailed(Exception):
    """An attempt failed and another will follow: the message is NAKed with the backoff."""


def read_order(msg: Msg) -> DeliveryOrder:
    """A delivery message, with its attempt number from the message's delivery count."""
    try:
        order = _order.decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Permanent(f"not a delivery order: {exc}") from exc
    return msgspec.structs.replace(order, attempt=msg.metadata.num_delivered)


class Webhooks:
    def __init__(
        self, hooks: WebhookStore, deliveries: DeliveryStore, send: Send, how: Delivering
    ) -> None:
        self.hooks = hooks
        self.deliveries = deliveries
        self.send = send
        self.how = how
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        await self.hooks.open()
        await self.deliveries.open()
        # Redirects are not followed: the URL given is where a delivery goes.
        self._http = httpx.AsyncClient(timeout=self.how.timeout_s, follow_redirects=False)

    async def close(self) -> None:
        await self.hooks.close()
        if self._http is not None:
            await self._http.aclose()

    # -- the fan-out ---------------------------------------------------------------------

    def wanted(self, project: str | None) -> bool:
        """Whether ``project`` has any webhook: an in-memory check, cheap enough for
        every fold."""
        return project is not None and not self.hooks.empty and bool(self.hooks.of(project))

    async def fan_out(self, project: str, events: list[WorkflowEvent]) -> None:
        """One delivery message per event and enabled webhook that subscribes to it."""
        hooks = [h for h in self.hooks.of(project) if h.enabled]
        sends = []
        for event in events:
            kind = webhook_type(event.TYPE)
            for hook in hooks:
                if kind in hook.events:
                    order = domain.order(hook, event)
                    headers = {"Nats-Msg-Id": f"{hook.id}.{event.event_id}"}
                    body = msgspec.json.encode(order)
                    sends.append(self.send(delivery_subject(hook.id), body, headers))
        await asyncio.gather(*sends)

    # -- delivering ----------------------------------------------------------------------

    async def deliver(self, order: DeliveryOrder) -> None:
        key = delivery_key(order.webhook_id, order.delivery_id)
        record, _ = await self.deliveries.get(key)
        if domain.done(record, order):
            return  # published twice, or replaced by a redelivery
        hook, _ = await self.hooks.get(webhook_key(order.project, order.webhook_id))
        if hook is None or not hook.enabled:
            reason = "webhook deleted" if hook is None else "webhook disabled"
            await self.deliveries.change(key, lambda old: domain.dropped(old, order, reason))
            return
        if order.attempt > self.how.attempts:  # the last attempt was made: settle it
            await self.deliveries.change(
                key, lambda old: domain.dropped(old, order, "no attempts left")
            )
            return
        attempt = await self._post(hook, order)
        ok = attempt.error is None
        last = order.attempt >= self.how.attempts
        state: DeliveryState = "delivered" if ok else ("failed" if last else "pending")
        await self.deliveries.change(key, lambda old: domain.attempted(old, order, attempt, state))
        if ok:
            if hook.failures:
                await self._change_hook(hook, domain.succeeded)
            return
        if not last:
            raise DeliveryFailed(f"{order.delivery_id} to {hook.id}: {attempt.error}")
        await self._count_failure(hook, attempt.error or "")

    async def _post(self, hook: StoredWebhook, order: DeliveryOrder) -> DeliveryAttempt:
        assert self._http is not None, "opened at start"
        at = domain.now()
        headers = domain.signed_headers(hook.secret, order.delivery_id, order.body, at)
        started = time.monotonic()
        status, error = None, None
        try:
            reply = await self._http.post(hook.url, content=order.body.encode(), headers=headers)
            status = reply.status_code
            if not reply.is_success:
                error = f"HTTP {status}"
        except Exception as exc:  # whatever the receiver does is its failure, not the bus's
            error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        took = round(time.monotonic() - started, 4)
        return DeliveryAttempt(at=at, duration_s=took, status=status, error=error)

    async def _count_failure(self, hook: StoredWebhook, last: str) -> None:
        after = await self._change_hook(
            hook, lambda h: domain.failed(h, last, self.how.disable_after)
        )
        if after is not None and hook.enabled and not after.enabled:
            # The URL stays out of the log: it may hold credentials.
            log.warning("webhook %s of project %s %s", after.id, after.project,
                        after.disabled_reason)  # fmt: skip

    async def _change_hook(
        self, hook: StoredWebhook, change: Callable[[StoredWebhook], StoredWebhook]
    ) -> StoredWebhook | None:
        key = webhook_key(hook.project, hook.id)
        after = await self.hooks.change(key, lambda h: None if h is None else change(h))
        self.hooks.known(after, hook.project, hook.id)
        return after

    # -- asked by the gateway ------------------------------------------------------------

    async def create(self, ask: NewWebhook) -> WebhookCreated:
        """``aiop.webhooks.create.v1``."""
        _check_project(ask.project)
        _valid(ask.webhook.url, ask.webhook.events)
        hook = domain.new_webhook(ask.project, ask.webhook, ask.created_by)
        await self.hooks.bucket().create(webhook_key(hook.project, hook.id),
                                         msgspec.json.encode(hook))  # fmt: skip
        self.hooks.known(hook, hook.project, hook.id)
        log.info("webhook %s of project %s created for %s", hook.id, hook.project, hook.url)
        return domain.created(hook)

    async def update(self, ask: WebhookChange) -> Webhook:
        """``aiop.webhooks.update.v1``."""
        await self._existing(ask.project, ask.id)
        _valid(ask.patch.url, ask.patch.events)
        after = await self.hooks.change(
            webhook_key(ask.project, ask.id),
            lambda h: None if h is None else domain.patched(h, ask.patch),
        )
        if after is None:
            raise _no_webhook(ask.id)
        self.hooks.known(after, ask.project, ask.id)
        return domain.shown(after)

    async def get(self, ask: WebhookRef) -> Webhook:
        """``aiop.webhooks.get.v1``."""
        return domain.shown(await self._existing(ask.project, ask.id))

    async def list(self, ask: WebhooksQuery) -> WebhookList:
        """``aiop.webhooks.list.v1``: read from the bucket, not memory, so that a list
        right after a change on another replica shows it."""
        _check_project(ask.project)
        found = await self.hooks.values(f"{ask.project}.*")
        found.sort(key=lambda h: (h.created_at, h.id))
        return WebhookList(project=ask.project, webhooks=[domain.shown(h) for h in found])

    async def delete(self, ask: WebhookRef) -> Webhook:
        """``aiop.webhooks.delete.v1``: deliveries still pending are dropped."""
        hook = await self._existing(ask.project, ask.id)
        await self.hooks.bucket().delete(webhook_key(ask.project, ask.id))
        self.hooks.known(None, ask.project, ask.id)
        return domain.shown(hook)

    async def list_deliveries(self, ask: DeliveriesQuery) -> DeliveryList:
        """``aiop.webhooks.deliveries.v1``: newest first."""
        await self._existing(ask.project, ask.id)
        found = await self.deliveries.values(f"{ask.id}.*")
        found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        limit = max(1, min(ask.limit, MAX_DELIVERIES))
        return DeliveryList(
            webhook_id=ask.id, deliveries=[domain.delivery_view(d) for d in found[:limit]]
        )

    async def redeliver(self, ask: DeliveryRef) -> WebhookDelivery:
        """``aiop.webhooks.redeliver.v1``: a new series of attempts of a settled delivery,
        under the same ``webhook-id``."""
        hook = await self._existing(ask.project, ask.id)
        _check(ask.delivery_id, "delivery id")
        if not hook.enabled:
            raise QueryFailed(409, f"webhook {ask.id} is disabled: enable it first")
        key = delivery_key(ask.id, ask.delivery_id)
        sent: list[DeliveryOrder] = []

        def renew(record: StoredDelivery | None) -> StoredDelivery:
            if record is None:
                raise QueryFailed(404, f"no delivery {ask.delivery_id} of webhook {ask.id}")
            if record.state == "pending":
                raise QueryFailed(409, f"delivery {ask.delivery_id} is still pending")
            renewed, order = domain.again(record)
            sent[:] = [order]
            return renewed

        renewed = await self.deliveries.change(key, renew)
        assert renewed is not None
        assert sent
        order = sent[0]
        msg_id = f"{order.webhook_id}.{order.event_id}.r{order.series}"
        try:
            await self.send(delivery_subject(order.webhook_id), msgspec.json.encode(order),
                            {"Nats-Msg-Id": msg_id})  # fmt: skip
        except Exception:  # not queued: settled as it was, so it can be asked again
            await self.deliveries.change(key, lambda r: r and msgspec.structs.replace(
                r, state="failed", reason="the redelivery could not be queued"))  # fmt: skip
            raise
        return domain.delivery_view(renewed)

    async def _existing(self, project: str, webhook_id: str) -> StoredWebhook:
        _check_project(project)
        _check(webhook_id, "webhook id")
        hook, _ = await self.hooks.get(webhook_key(project, webhook_id))
        if hook is None:
            raise _no_webhook(webhook_id)
        return hook


def _no_webhook(webhook_id: str) -> QueryFailed:
    return QueryFailed(404, f"no webhook {webhook_id}")


def _check(value: str, what: str) -> None:
    try:
        check_token(value, what)
    except InvalidToken as exc:
        raise QueryFailed(400, str(exc)) from exc


def _check_project(project: str) -> None:
    _check(project, "project")


def _valid(url: str | None, events: Sequence[str] | None) -> None:
    found = check_webhook(url, events)
    if found:
        raise QueryFailed(422, "; ".join(found))
