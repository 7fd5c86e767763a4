"""The scheduled-maintenance template as a user runs it: in its own project, with the
token the platform gives its step, it removes ended runs past their retention with their
logs, and reports what went; a dry run only reports."""

import json
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

GREET = "name: greet\nsteps:\n  - name: greet\n    run: [sh, -c, 'echo hello from greet']\n"


def aiop(platform: Platform, *args: str) -> Any:
    done = platform.aiop(*args, "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def maintenance(platform: Platform, project: str, *params: str) -> dict[str, Any]:
    given = [arg for p in ("run_retention_days=0", "cache_retention_days=0", *params)
             for arg in ("-p", p)]  # fmt: skip
    view = aiop(platform, "run", "scheduled-maintenance", "--project", project, *given, "--wait")
    assert view["state"] == "succeeded", json.dumps(view, indent=1)
    summary: dict[str, Any] = view["summary"]["prune"]
    return summary


def test_maintenance_prunes_ended_runs_of_its_project_and_reports(platform: Platform) -> None:
    project = f"upkeep-{uuid.uuid4().hex[:6]}"
    aiop(platform, "projects", "create", project)
    (platform.root / "greet.yaml").write_text(GREET)
    aiop(platform, "tasks", "create", "greet", "--workflow", "greet.yaml", "--project", project)
    old = aiop(platform, "tasks", "run", "greet", "--project", project, "--wait")
    assert old["state"] == "succeeded"
    assert "hello from greet" in platform.aiop("logs", old["workflow_id"]).stdout
    elsewhere = aiop(platform, "run", "ci-cd", "--wait")  # another project's run stays

    dry = maintenance(platform, project, "dry_run=true")
    assert dry["dry_run"] is True
    assert dry["runs_removed"] == 1  # the old run; nothing else of this project had ended
    assert aiop(platform, "status", old["workflow_id"])["state"] == "succeeded"

    done = maintenance(platform, project)
    assert done["dry_run"] is False
    assert done["runs_removed"] == 2  # the old run and the dry run
    assert done["log_entries_removed"] >= 1
    gone = platform.aiop("status", old["workflow_id"])
    assert gone.returncode == 1
    assert "404" in gone.stderr
    listed = aiop(platform, "ls", "--project", project)["workflows"]
    assert old["workflow_id"] not in [r["workflow_id"] for r in listed]
    assert aiop(platform, "status", elsewhere["workflow_id"])["state"] == "succeeded"
