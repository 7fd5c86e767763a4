"""``aiop schedules create`` sends the schedule its options describe: a template, or a
task of the project with its -p typed by the task's template. The platform's side is
covered by the gateway's, task-manager's and the end-to-end tests."""

from typing import Any

import pytest
from typer.testing import CliRunner

from aiop.cli import main
from aiop.cli import schedules as cli_schedules

SCHEMA = {"properties": {"limit": {"type": "integer"}, "group_by": {"type": "string"}}}


class FakeGateway:
    def __init__(self) -> None:
        self.created: list[tuple[dict[str, Any], str]] = []

    def task(self, project: str, name: str) -> dict[str, Any]:
        return {"name": name, "project": project, "template": "data-processing"}

    def template(self, ref: str, project: str) -> dict[str, Any]:
        assert ref == "data-processing"
        return {"parameters": SCHEMA}

    def schedules(self, method: str, path: str, project: str, **kwargs: Any) -> Any:
        self.created.append((kwargs["json"], project))
        return {**kwargs["json"], "next_at": "2026-01-01T00:00:00Z"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(cli_schedules, "gateway", lambda: gateway)
    return gateway


def test_create_of_a_task_types_its_parameters_by_the_tasks_template(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, [
        "schedules", "create", "weekly", "--cron", "0 6 * * mon", "--task", "report",
        "-p", "limit=5", "-p", "group_by=week", "--project", "analytics",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    (body, project) = fake.created[0]
    assert project == "analytics"
    assert body["task"] == "report"
    assert "template" not in body
    assert body["parameters"] == {"limit": 5, "group_by": "week"}


@pytest.mark.parametrize("target", [[], ["--template", "data-processing", "--task", "report"]])
def test_create_wants_a_template_or_a_task(fake: FakeGateway, target: list[str]) -> None:
    result = CliRunner().invoke(main.app, ["schedules", "create", "x", "--cron", "* * * * *",
                                           *target])  # fmt: skip
    assert result.exit_code == 2
    assert "--template or --task" in result.output
    assert fake.created == []
