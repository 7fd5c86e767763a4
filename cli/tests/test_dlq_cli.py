"""``aiop dlq ls`` prints the dead letters the gateway lists, and ``aiop dlq replay`` sends
one again, fixed from a file. The gateway's side is in services/gateway/tests/test_dead_letters.py
and tests/e2e/test_dead_letters.py."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aiop.cli import common, main
from aiop.client.errors import error_for

ITEM = {
    "seq": 7, "recorded_at": "2026-01-01T00:00:00+00:00", "stream": "AIOP_EXT",
    "consumer": "task-manager-external", "original_subject": "ext.shop.noise",
    "stream_seq": 3, "reason": "Permanent: not a CloudEvent", "deliveries": 1,
    "project": None, "workflow_id": None, "payload": "hello", "payload_encoding": "utf-8",
    "headers": {}, "replayable": True, "replayed_at": None, "replayed_by": None,
}  # fmt: skip


class FakeGateway:
    def __init__(self) -> None:
        self.replayed: list[tuple[int, str | None, bool]] = []

    def dead_letters(self, limit: int, before: int | None) -> dict[str, Any]:
        return {"items": [ITEM], "next": 6 if limit == 1 else None}

    def replay_dead_letter(self, seq: int, payload: str | None, force: bool) -> dict[str, Any]:
        if self.replayed and not force:  # the gateway's 409, as the SDK raises it
            raise error_for(httpx.Response(409, json={"type": "urn:aiop:problem:replayed",
                                                      "title": "Conflict", "status": 409,
                                                      "detail": "replayed before"}))  # fmt: skip
        self.replayed.append((seq, payload, force))
        return {"seq": seq, "subject": "ext.shop.noise", "replayed_at": "now", "msg_id": "m"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)
    return gateway


def test_ls_prints_each_record_with_its_reason(fake: FakeGateway) -> None:
    shown = CliRunner().invoke(main.app, ["dlq", "ls"])
    assert shown.exit_code == 0, shown.output
    assert "ext.shop.noise" in shown.output
    assert "Permanent: not a CloudEvent" in shown.output
    assert json.loads(CliRunner().invoke(main.app, ["dlq", "ls", "--json"]).output) == {
        "items": [ITEM], "next": None,
    }  # fmt: skip
    paged = CliRunner().invoke(main.app, ["dlq", "ls", "--limit", "1"])
    assert "--before 6" in paged.output


def test_replay_sends_the_fixed_file_once(fake: FakeGateway, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text('{"specversion": "1.0"}')
    sent = CliRunner().invoke(main.app, ["dlq", "replay", "7", "--payload-file", str(fixed)])
    assert sent.exit_code == 0, sent.output
    assert "7 replayed to ext.shop.noise" in sent.output
    assert fake.replayed == [(7, '{"specversion": "1.0"}', False)]
    again = CliRunner().invoke(main.app, ["dlq", "replay", "7"])
    assert again.exit_code == 2
    assert "replayed before" in again.output
    forced = CliRunner().invoke(main.app, ["dlq", "replay", "7", "--force", "--json"])
    assert json.loads(forced.output)["subject"] == "ext.shop.noise"
    missing = CliRunner().invoke(main.app, ["dlq", "replay", "7", "--payload-file", "/no/such"])
    assert missing.exit_code == 2
