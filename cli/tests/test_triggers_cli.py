"""``aiop triggers create`` sends the trigger its options describe, and ``aiop events
send`` a CloudEvent in binary mode. The platform's side is covered by the gateway's,
task-manager's and the end-to-end tests."""

from typing import Any

import pytest
from typer.testing import CliRunner

from aiop.cli import common, main


class FakeGateway:
    def __init__(self) -> None:
        self.saved: list[tuple[dict[str, Any], str]] = []
        self.sent: list[tuple[dict[str, str], bytes, str]] = []

    def save_trigger(self, body: dict[str, Any], project: str) -> tuple[bool, dict[str, Any]]:
        self.saved.append((body, project))
        return True, body

    def send_event(self, headers: dict[str, str], body: bytes, project: str) -> dict[str, Any]:
        self.sent.append((headers, body, project))
        return {"id": headers["ce-id"], "subject": "ext.s.t"}

    def events(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"events": [
            {"received_at": "2026-01-01T00:00:00+00:00", "type": "t", "id": "e1",
             "runs": [{"trigger": "a", "workflow_id": "wf1"}, {"trigger": "b", "reason": "no"}]},
            {"received_at": "2026-01-01T00:00:00+00:00", "type": "t", "id": "e2"},
        ]}  # fmt: skip


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)
    return gateway


def test_create_sends_filter_and_parameters_typed(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, [
        "triggers", "create", "on-push", "--on", "com.example.*", "--template", "ci-cd@1.0.0",
        "--where", "ref=main", "-w", "repo.private=false", "-p", "who=${{ event.data.author }}",
        "-p", "times=3", "--source", "git", "--project", "team",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "on-push created in team" in result.output
    (body, project) = fake.saved[0]
    assert project == "team"
    assert body == {
        "name": "on-push", "event_type": "com.example.*", "source": "git",
        "filter": {"ref": "main", "repo.private": False},
        "target": {"template": "ci-cd@1.0.0",
                   "parameters": {"who": "${{ event.data.author }}", "times": 3}},
        "enabled": True, "description": "",
    }  # fmt: skip
    refused = CliRunner().invoke(main.app, ["triggers", "create", "x", "--on", "t",
                                            "--template", "y", "-w", "novalue"])  # fmt: skip
    assert refused.exit_code == 2


def test_send_posts_a_binary_mode_cloudevent(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, ["events", "send", "--type", "com.example.push",
                                           "--id", "e1", "--data", '{"ref": "main"}'])  # fmt: skip
    assert result.exit_code == 0, result.output
    headers, body, project = fake.sent[0]
    assert headers["ce-id"] == "e1"
    assert headers["ce-type"] == "com.example.push"
    assert headers["ce-specversion"] == "1.0"
    assert (body, project) == (b'{"ref": "main"}', "default")
    bad = CliRunner().invoke(main.app, ["events", "send", "--type", "t", "--data", "{nope"])
    assert bad.exit_code == 2


def test_events_ls_says_what_each_started(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, ["events", "ls"])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert "a -> wf1" in first
    assert "b: no" in first
    assert "no trigger matched" in second


def test_create_of_a_task_sends_the_task_as_the_target(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, [
        "triggers", "create", "on-ship", "--on", "com.example.ship", "--task", "report",
        "-p", "group_by=${{ event.data.by }}", "--project", "team",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    (body, _) = fake.saved[0]
    assert body["target"] == {"task": "report", "parameters": {"group_by": "${{ event.data.by }}"}}
    for target in ([], ["--template", "ci-cd", "--task", "report"]):
        refused = CliRunner().invoke(main.app, ["triggers", "create", "x", "--on", "t", *target])
        assert refused.exit_code == 2
        assert "--template or --task" in refused.output
    assert len(fake.saved) == 1
