"""Webhooks as data: signing as Standard Webhooks verifies it, the payload, and how
failures disable a webhook and enabling starts it over."""

import msgspec
import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from aiop.contracts import events as ev
from aiop.contracts.webhooks import WEBHOOK_EVENTS, WebhookIn, WebhookPatch, check_webhook
from aiop.reporter.domain import webhooks as domain


def hook() -> domain.StoredWebhook:
    given = WebhookIn(url="https://ci.example/hook", events=["workflow.failed", "workflow.failed"])
    return domain.new_webhook("team", given, "alice")


def test_each_event_type_is_named_without_prefix_and_version() -> None:
    assert WEBHOOK_EVENTS["workflow.completed"] is ev.WorkflowCompleted
    assert WEBHOOK_EVENTS["step.skipped"] is ev.StepSkipped
    assert len(WEBHOOK_EVENTS) == 13


def test_a_delivery_verifies_with_the_standardwebhooks_library() -> None:
    made = hook()
    assert made.secret.startswith("whsec_")
    assert made.events == ["workflow.failed"]
    event = ev.WorkflowFailed(workflow_id="wf1", executor_id="x", reason="exit 3")
    order = domain.order(made, event)
    headers = domain.signed_headers(made.secret, order.delivery_id, order.body, domain.now())
    body = Verifier(made.secret).verify(order.body.encode(), headers)
    assert body["type"] == "workflow.failed"
    assert body["data"] == {**msgspec.to_builtins(event), "project": "team"}
    assert body["timestamp"] == msgspec.to_builtins(event.occurred_at)
    with pytest.raises(WebhookVerificationError):
        Verifier(hook().secret).verify(order.body.encode(), headers)  # another's secret
    # One event, one webhook: one id, however often it comes.
    assert domain.order(made, event).delivery_id == order.delivery_id
    assert domain.delivery_id("wh_other", event.event_id) != order.delivery_id


def test_failures_in_a_row_disable_and_enabling_starts_over() -> None:
    made = domain.failed(hook(), "HTTP 500", disable_after=2)
    assert (made.enabled, made.failures) == (True, 1)
    assert domain.succeeded(made).failures == 0
    off = domain.failed(made, "ConnectError", disable_after=2)
    assert not off.enabled
    assert off.disabled_reason == (
        "disabled after 2 consecutive failed deliveries (last: ConnectError)"
    )
    on = domain.patched(off, WebhookPatch(enabled=True))
    assert (on.enabled, on.failures, on.disabled_reason) == (True, 0, None)
    assert "secret" not in msgspec.to_builtins(domain.shown(on))


def test_what_a_webhook_may_not_be() -> None:
    assert check_webhook("https://ci.example/x", ["workflow.completed"]) == []
    assert check_webhook("https://:80/x", None)
    assert check_webhook(None, [])
    assert "unknown event types nope" in check_webhook(None, ["nope"])[0]
