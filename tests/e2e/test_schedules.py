"""A schedule as a user meets it through ``aiop up`` and the CLI: an every-second schedule
of a built-in template starts a run that records the schedule and its tick, the run
succeeds, and the schedule pauses; a schedule of a project's task runs the task."""

import json
import uuid
from typing import Any

import pytest

from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.devstack import until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

NAME = "e2e-every-second"


def cli_json(platform: Platform, *args: str) -> Any:
    done = platform.aiop(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_schedule_starts_a_built_in_template_on_time_and_pauses(platform: Platform) -> None:
    created = platform.aiop(
        "schedules", "create", NAME, "--cron", "* * * * * *", "--template", "data-processing"
    )
    assert created.returncode == 0, created.stderr
    listed = cli_json(platform, "schedules", "ls")
    assert [s["name"] for s in listed] == [NAME]
    assert listed[0]["next_at"]

    def a_started_run() -> str | None:
        ticks = cli_json(platform, "schedules", "show", NAME).get("ticks", [])
        return next((t["workflow_id"] for t in reversed(ticks) if "workflow_id" in t), None)

    workflow_id = until_sync(a_started_run, timeout_s=30, what="a run the schedule started")
    paused = platform.aiop("schedules", "pause", NAME)
    assert paused.returncode == 0, paused.stderr
    shown = cli_json(platform, "schedules", "show", NAME)
    assert shown["enabled"] is False
    assert "next_at" not in shown

    def ended() -> dict[str, Any] | None:
        view: dict[str, Any] = cli_json(platform, "status", workflow_id)
        return view if view["state"] in TERMINAL_WORKFLOW_STATES else None

    view = until_sync(ended, timeout_s=300, what="the scheduled run's end")
    assert view["state"] == "succeeded", json.dumps(view, indent=1)
    assert view["origin"]["kind"] == "schedule"
    assert view["origin"]["schedule"] == NAME
    tick = next(t["tick"] for t in shown["ticks"] if t.get("workflow_id") == workflow_id)
    assert view["origin"]["tick"] == tick
    assert view["template"].startswith("data-processing@")
    assert platform.aiop("schedules", "rm", NAME).returncode == 0
    assert platform.aiop("schedules", "show", NAME).returncode == 1  # 404: gone


def test_a_schedule_of_a_task_runs_the_task(platform: Platform) -> None:
    project = f"scheduled-{uuid.uuid4().hex[:6]}"
    for args in [
        ("projects", "create", project),
        ("tasks", "create", "report", "--template", "data-processing", "-p", "group_by=month",
         "--project", project),
        ("schedules", "create", "by-task", "--cron", "* * * * * *", "--task", "report",
         "-p", "group_by=region", "--project", project),
    ]:  # fmt: skip
        done = platform.aiop(*args)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "task report" in platform.aiop("schedules", "ls", "--project", project).stdout

    def a_started_run() -> str | None:
        shown = cli_json(platform, "schedules", "show", "by-task", "--project", project)
        return next((t["workflow_id"] for t in shown.get("ticks", []) if "workflow_id" in t), None)

    workflow_id = until_sync(a_started_run, timeout_s=30, what="a run of the task")
    assert platform.aiop("schedules", "pause", "by-task", "--project", project).returncode == 0

    def ended() -> dict[str, Any] | None:
        view: dict[str, Any] = cli_json(platform, "status", workflow_id)
        return view if view["state"] in TERMINAL_WORKFLOW_STATES else None

    view = until_sync(ended, timeout_s=300, what="the task's scheduled run's end")
    assert view["state"] == "succeeded", json.dumps(view, indent=1)
    assert (view["task"], view["project"]) == ("report", project)
    assert view["template"].startswith("data-processing@")  # the exact version it ran
    assert view["parameters"]["group_by"] == "region"  # the schedule's over the task's
    assert view["origin"]["schedule"] == "by-task"
    listed = cli_json(platform, "ls", "--project", project, "--task", "report")
    assert workflow_id in [r["workflow_id"] for r in listed["workflows"]]
