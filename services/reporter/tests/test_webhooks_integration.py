"""Webhooks against a real nats-server and a local receiver that verifies every
signature with the standardwebhooks library: one delivery per event, retries after a
failure, disabling after repeated failure, and no delivery of another project's events."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client
from standardwebhooks import Webhook as Verifier

from aiop.contracts import events as ev
from aiop.contracts.endpoints import (
    CREATE_WEBHOOK,
    GET_WEBHOOK,
    LIST_DELIVERIES,
    LIST_WEBHOOKS,
    REDELIVER,
    UPDATE_WEBHOOK,
    Endpoint,
)
from aiop.contracts.envelope import encode_event
from aiop.contracts.webhooks import (
    DeliveriesQuery,
    DeliveryList,
    DeliveryRef,
    Webhook,
    WebhookChange,
    WebhookCreated,
    WebhookDelivery,
    WebhookList,
    WebhookPatch,
    WebhookRef,
    WebhooksQuery,
)
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.devstack import until
from aiop.devstack.receiver import Received, Receiver
from aiop.reporter.main import ReporterSettings, build
from aiop.servicekit.rpc import QueryFailed, request, wait_ready

pytestmark = pytest.mark.integration


def spec(project: str) -> WorkflowSpec:
    return WorkflowSpec(name="ci", project=project, steps=[StepSpec(name="b", run=["make"])])


@dataclass
class Reporter:
    nc: Client

    async def ask(self, endpoint: Endpoint[Any, Any], payload: object, kind: type) -> object:
        body = await request(self.nc, endpoint.subject, payload)
        return msgspec.json.decode(body, type=kind)

    async def create(self, url: str, events: list[str], project: str = "team") -> WebhookCreated:
        # As the bus carries it: the reporter checks what it is given.
        ask = {"project": project, "webhook": {"url": url, "events": events}}
        created = await self.ask(CREATE_WEBHOOK, ask, WebhookCreated)
        assert isinstance(created, WebhookCreated)
        return created

    async def webhook(self, webhook_id: str, project: str = "team") -> Webhook:
        found = await self.ask(GET_WEBHOOK, WebhookRef(project=project, id=webhook_id), Webhook)
        assert isinstance(found, Webhook)
        return found

    async def deliveries(self, webhook_id: str, project: str = "team") -> list[WebhookDelivery]:
        ask = DeliveriesQuery(project=project, id=webhook_id)
        found = await self.ask(LIST_DELIVERIES, ask, DeliveryList)
        assert isinstance(found, DeliveryList)
        return found.deliveries

    async def publish(self, event: ev.Event) -> None:
        envelope = encode_event(event, "test")
        await self.nc.jetstream().publish(envelope.subject, envelope.body, headers=envelope.headers)


@pytest.fixture
async def reporter(nats_url: str) -> AsyncIterator[Reporter]:
    """A reporter retrying webhooks after 0.1 s, 3 attempts, disabling after 2 failures."""
    settings = ReporterSettings(
        nats_url=nats_url, webhook_backoff_s="0.1", webhook_attempts=3,
        webhook_disable_after=2, webhook_timeout_s=2.0,
    )  # fmt: skip
    app = build(settings)
    task = asyncio.create_task(app.run())
    nc = await nats.connect(nats_url)
    try:
        await wait_ready(nc, "reporter", timeout=10)
        yield Reporter(nc)
    finally:
        await nc.close()
        app.exit()
        await task


def verifying(secret: Callable[[], str], statuses: list[int]) -> Callable[[Received], int]:
    """An answer that verifies the signature (raising if it is wrong), then answers the
    next of ``statuses`` (the last one repeats)."""

    def answer(request: Received) -> int:
        Verifier(secret()).verify(request.body, request.headers)
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]

    return answer


async def test_one_signed_delivery_per_event(reporter: Reporter) -> None:
    secret = ""
    async with Receiver(verifying(lambda: secret, [200])) as receiver:
        hook = await reporter.create(receiver.url, ["workflow.completed"])
        secret = hook.secret
        assert hook.secret.startswith("whsec_")
        wf = "wf-hook-1"
        done = ev.WorkflowCompleted(workflow_id=wf, executor_id="x1")
        await reporter.publish(ev.WorkflowAccepted(workflow_id=wf, spec=spec("team")))
        await reporter.publish(ev.WorkflowStarted(workflow_id=wf, executor_id="x1"))
        await reporter.publish(done)
        got = await receiver.next()
        assert (got.status, got.error) == (200, None)
        body = msgspec.json.decode(got.body)
        assert body["type"] == "workflow.completed"
        assert body["data"]["workflow_id"] == wf
        assert body["data"]["project"] == "team"
        assert body["data"]["event_id"] == done.event_id
        # The same event again, as a redelivery would bring it: no second delivery.
        envelope = encode_event(done, "test")
        await reporter.nc.jetstream().publish(
            envelope.subject, envelope.body,
            headers={**envelope.headers, "Nats-Msg-Id": "another-copy"},
        )  # fmt: skip
        # A later event marks the point where the copy was surely folded.
        await reporter.publish(ev.WorkflowAccepted(workflow_id="wf-hook-1b", spec=spec("team")))
        await reporter.publish(ev.WorkflowCompleted(workflow_id="wf-hook-1b", executor_id="x1"))
        later = await receiver.next()
        assert msgspec.json.decode(later.body)["data"]["workflow_id"] == "wf-hook-1b"
        assert receiver.received.empty()
        [delivery] = [d for d in await reporter.deliveries(hook.id) if d.workflow_id == wf]
        assert delivery.state == "delivered"
        assert delivery.id == got.headers["webhook-id"]
        assert [a.status for a in delivery.attempts] == [200]


async def test_a_failed_attempt_is_retried(reporter: Reporter) -> None:
    secret = ""
    async with Receiver(verifying(lambda: secret, [500, 200])) as receiver:
        hook = await reporter.create(receiver.url, ["workflow.failed"])
        secret = hook.secret
        wf = "wf-hook-2"
        await reporter.publish(ev.WorkflowAccepted(workflow_id=wf, spec=spec("team")))
        await reporter.publish(ev.WorkflowFailed(workflow_id=wf, executor_id="x", reason="no"))
        first, second = await receiver.next(), await receiver.next()
        assert (first.status, second.status) == (500, 200)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]

        async def delivered() -> bool:
            return [d.state for d in await reporter.deliveries(hook.id)] == ["delivered"]

        ok: bool = await until(delivered, what="the delivery on its second attempt")
        assert ok
        [delivery] = await reporter.deliveries(hook.id)
        assert [(a.status, a.error) for a in delivery.attempts] == [(500, "HTTP 500"), (200, None)]
        assert all(a.duration_s >= 0 for a in delivery.attempts)
        assert (await reporter.webhook(hook.id)).failures == 0


async def test_repeated_failure_disables_the_webhook(
    reporter: Reporter, caplog: pytest.LogCaptureFixture
) -> None:
    secret = ""
    async with Receiver(verifying(lambda: secret, [500])) as receiver:
        hook = await reporter.create(receiver.url, ["workflow.completed"])
        secret = hook.secret
        for wf in ("wf-hook-3a", "wf-hook-3b"):  # two deliveries of 3 attempts each fail
            await reporter.publish(ev.WorkflowAccepted(workflow_id=wf, spec=spec("team")))
            await reporter.publish(ev.WorkflowCompleted(workflow_id=wf, executor_id="x"))
        for _ in range(6):
            assert (await receiver.next()).status == 500

        async def disabled() -> bool:
            return not (await reporter.webhook(hook.id)).enabled

        off: bool = await until(disabled, what="the webhook disabled")
        assert off
        found = await reporter.webhook(hook.id)
        assert found.disabled_reason == (
            "disabled after 2 consecutive failed deliveries (last: HTTP 500)"
        )
        warned = [r for r in caplog.records if r.levelname == "WARNING" and hook.id in r.message]
        assert any(str(found.disabled_reason) in r.message for r in warned)
        deliveries = await reporter.deliveries(hook.id)
        assert [d.state for d in deliveries] == ["failed", "failed"]
        assert all(len(d.attempts) == 3 for d in deliveries)
        # Disabled: nothing more is sent, and a redelivery is refused until it is enabled.
        await reporter.publish(ev.WorkflowAccepted(workflow_id="wf-hook-3c", spec=spec("team")))
        await reporter.publish(ev.WorkflowCompleted(workflow_id="wf-hook-3c", executor_id="x"))
        ref = DeliveryRef(project="team", id=hook.id, delivery_id=deliveries[0].id)
        with pytest.raises(QueryFailed) as refused:
            await request(reporter.nc, REDELIVER.subject, ref)
        assert refused.value.code == 409
        # Enabled again, it starts over; the redelivery is a new series, the same id.
        enable = WebhookChange(project="team", id=hook.id, patch=WebhookPatch(enabled=True))
        enabled = await reporter.ask(UPDATE_WEBHOOK, enable, Webhook)
        assert isinstance(enabled, Webhook)
        assert (enabled.enabled, enabled.failures, enabled.disabled_reason) == (True, 0, None)
        again = await reporter.ask(REDELIVER, ref, WebhookDelivery)
        assert isinstance(again, WebhookDelivery)
        assert (again.state, again.series) == ("pending", 1)
        resent = await receiver.next()
        assert resent.headers["webhook-id"] == deliveries[0].id
        assert msgspec.json.decode(resent.body)["data"]["workflow_id"] == deliveries[0].workflow_id
        assert receiver.received.empty()  # wf-hook-3c came while it was disabled


async def test_another_projects_events_are_not_delivered(reporter: Reporter) -> None:
    secret = ""
    async with Receiver(verifying(lambda: secret, [200])) as receiver:
        hook = await reporter.create(receiver.url, ["workflow.completed"], project="team")
        secret = hook.secret
        await reporter.publish(ev.WorkflowAccepted(workflow_id="wf-other", spec=spec("other")))
        await reporter.publish(ev.WorkflowCompleted(workflow_id="wf-other", executor_id="x"))
        await reporter.publish(ev.WorkflowAccepted(workflow_id="wf-mine", spec=spec("team")))
        await reporter.publish(ev.WorkflowCompleted(workflow_id="wf-mine", executor_id="x"))
        got = await receiver.next()
        assert msgspec.json.decode(got.body)["data"]["workflow_id"] == "wf-mine"
        assert receiver.received.empty()
        listed = await reporter.ask(LIST_WEBHOOKS, WebhooksQuery(project="other"), WebhookList)
        assert isinstance(listed, WebhookList)
        assert listed.webhooks == []
        with pytest.raises(QueryFailed) as missing:
            await reporter.webhook(hook.id, project="other")
        assert missing.value.code == 404


@pytest.mark.parametrize(
    ("url", "events"),
    [("ftp://example.com/x", ["workflow.completed"]), ("https://example.com", ["no.such"]),
     ("https://example.com", [])],
)  # fmt: skip
async def test_bad_webhooks_are_refused(reporter: Reporter, url: str, events: list[str]) -> None:
    with pytest.raises(QueryFailed) as refused:
        await reporter.create(url, events)
    assert refused.value.code in (400, 422)
