"""``aiop agents ls|show``: a table of the agents the gateway lists, or their JSON. The
platform's side is covered by the gateway's tests."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from aiop.cli import common, main


def agent(name: str, heard_s_ago: float, stale: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)  # when asked: the tests may run minutes after the import
    return {
        "agent_id": f"ag-{name:0>16}"[:19], "name": name, "project": "default",
        "principal": "dev", "capabilities": ["summarize", "translate"], "concurrency": 4,
        "load": 1, "last_heartbeat": (now - timedelta(seconds=heard_s_ago)).isoformat(),
        "registered_at": now.isoformat(), "stale": stale,
    }  # fmt: skip


class FakeGateway:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    def agents(self, project: str | None) -> list[dict[str, Any]]:
        self.asked.append(project)
        return [agent("alpha", 3), agent("beta", 9000, stale=True)]

    def agent(self, agent_id: str) -> dict[str, Any]:
        self.asked.append(agent_id)
        return agent("alpha", 3)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)
    return gateway


def test_ls_shows_each_agents_load_and_when_it_was_heard_from(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, ["agents", "ls"])
    assert result.exit_code == 0, result.output
    header, alpha, beta = result.output.splitlines()
    assert header.split() == ["NAME", "ID", "PROJECT", "CAPABILITIES", "LOAD", "LAST", "HEARD"]
    assert alpha.split()[:5] == ["alpha", "ag-00000000000alpha", "default",
                                 "summarize,translate", "1/4"]  # fmt: skip
    assert alpha.endswith("s ago")
    assert beta.endswith("2h ago (stale)")
    assert fake.asked == [None]  # every project of the caller's


def test_ls_json_and_show(fake: FakeGateway) -> None:
    listed = CliRunner().invoke(main.app, ["agents", "ls", "--project", "team", "--json"])
    assert [a["name"] for a in json.loads(listed.output)] == ["alpha", "beta"]
    shown = CliRunner().invoke(main.app, ["agents", "show", "ag-00000000000alpha"])
    assert shown.exit_code == 0, shown.output
    assert "load          1/4" in shown.output
    assert "capabilities  summarize, translate" in shown.output
    assert fake.asked == ["team", "ag-00000000000alpha"]
