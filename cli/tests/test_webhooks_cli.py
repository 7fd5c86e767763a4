"""``aiop webhooks``: what each command asks the gateway, and what it prints. The
platform's side is covered by the reporter's, the gateway's and the end-to-end tests."""

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from aiop.cli import common, main

HOOK = {"id": "wh_1", "project": "team", "url": "https://ci.example/hook",
        "events": ["workflow.completed"], "enabled": False, "failures": 5,
        "disabled_reason": "disabled after 5 consecutive failed deliveries (last: HTTP 500)"}  # fmt: skip
DELIVERY = {"id": "msg_1", "state": "failed", "event_type": "workflow.completed",
            "workflow_id": "wf1", "reason": "HTTP 500",
            "attempts": [{"at": "2026-01-01T00:00:00+00:00", "status": 500, "error": "HTTP 500",
                          "duration_s": 0.012}]}  # fmt: skip


class FakeGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def create_webhook(self, *args: Any) -> dict[str, Any]:
        self.calls.append(("create", args))
        return {**HOOK, "enabled": True, "secret": "whsec_c2VjcmV0"}

    def list_webhooks(self, *args: Any) -> list[dict[str, Any]]:
        return [HOOK]

    def get_webhook(self, *args: Any) -> dict[str, Any]:
        return HOOK

    def update_webhook(self, *args: Any) -> dict[str, Any]:
        self.calls.append(("update", args))
        return {**HOOK, **args[1]}

    def delete_webhook(self, *args: Any) -> dict[str, Any]:
        self.calls.append(("delete", args))
        return HOOK

    def webhook_deliveries(self, *args: Any) -> list[dict[str, Any]]:
        self.calls.append(("deliveries", args))
        return [DELIVERY]

    def redeliver(self, *args: Any) -> dict[str, Any]:
        self.calls.append(("redeliver", args))
        return {**DELIVERY, "state": "pending", "series": 1}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)
    return gateway


def run(*args: str) -> str:
    result = CliRunner().invoke(main.app, ["webhooks", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_add_sends_each_event_and_shows_the_secret_once(fake: FakeGateway) -> None:
    out = run("add", "https://ci.example/hook", "--event", "workflow.completed",
              "-e", "workflow.failed", "--project", "team", "--description", "ci")  # fmt: skip
    assert fake.calls == [("create", ("https://ci.example/hook",
                                      ["workflow.completed", "workflow.failed"], "team", "ci"))]  # fmt: skip
    assert "whsec_c2VjcmV0" in out
    made = json.loads(run("add", "https://x.example", "-e", "step.failed", "--json"))
    assert made["secret"] == "whsec_c2VjcmV0"


def test_show_says_why_it_was_disabled(fake: FakeGateway) -> None:
    out = run("show", "wh_1")
    assert "disabled" in out
    assert "5 consecutive failed deliveries" in out
    assert json.loads(run("show", "wh_1", "--json"))["id"] == "wh_1"
    assert "wh_1" in run("ls")


def test_enable_and_disable_patch_enabled(fake: FakeGateway) -> None:
    assert "enabled" in run("enable", "wh_1")
    assert "disabled" in run("disable", "wh_1", "--project", "team")
    assert fake.calls == [("update", ("wh_1", {"enabled": True}, "default")),
                          ("update", ("wh_1", {"enabled": False}, "team"))]  # fmt: skip


def test_deliveries_show_each_attempt_and_redeliver_queues_one(fake: FakeGateway) -> None:
    first, attempt = run("deliveries", "wh_1").splitlines()
    assert "msg_1" in first
    assert "failed" in first
    assert "HTTP 500" in attempt
    assert "12 ms" in attempt
    assert json.loads(run("deliveries", "wh_1", "--json"))[0]["id"] == "msg_1"
    assert "msg_1 queued again" in run("redeliver", "wh_1", "msg_1")
    assert ("redeliver", ("wh_1", "msg_1", "default")) in fake.calls
    assert "wh_1 deleted" in run("rm", "wh_1")
