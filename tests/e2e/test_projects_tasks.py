"""Projects and tasks as a user meets them through ``aiop up``: a project holding a task
of a template and a task of a workflow, each run alone and both as one set with a
combined summary; a token limited to one project sees nothing of another; an archived
project starts nothing new."""

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

WORKFLOW = """\
name: greet
steps:
  - name: greet
    run: [sh, -c, 'echo "{\\"greeted\\": 1}" > "$AIOP_SUMMARY"']
"""


def aiop(platform: Platform, *args: str, timeout: float = 300) -> Any:
    done = platform.aiop(*args, "--json", timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_projects_hold_tasks_that_run_alone_or_as_a_set(platform: Platform) -> None:
    project = f"analytics-{uuid.uuid4().hex[:6]}"
    created = aiop(platform, "projects", "create", project, "--description", "numbers")
    assert created["created_by"] == "dev"
    assert project in [p["name"] for p in aiop(platform, "projects", "ls")]
    aiop(platform, "tasks", "create", "report", "--template", "data-processing",
         "--project", project)  # fmt: skip
    (platform.root / "greet.yaml").write_text(WORKFLOW)
    aiop(platform, "tasks", "create", "greet", "--workflow", "greet.yaml", "--project", project)
    assert [t["name"] for t in aiop(platform, "tasks", "ls", "--project", project)] == [
        "greet", "report"]  # fmt: skip

    alone = aiop(platform, "tasks", "run", "greet", "--project", project, "--wait")
    assert alone["state"] == "succeeded", alone
    assert alone["task"] == "greet"
    assert alone["project"] == project
    shown = aiop(platform, "tasks", "show", "greet", "--project", project)
    assert [r["workflow_id"] for r in shown["runs"]] == [alone["workflow_id"]]
    listed = aiop(platform, "ls", "--project", project, "--task", "greet")
    assert [r["workflow_id"] for r in listed["workflows"]] == [alone["workflow_id"]]

    together = aiop(platform, "projects", "run", project, "--wait", timeout=600)
    assert together["state"] == "succeeded", together
    assert sorted(r["task"] for r in together["runs"]) == ["greet", "report"]
    assert together["counts"] == {"succeeded": 2}
    assert together["summary"]["greet"] == {"greet": {"greeted": 1}}
    assert together["summary"]["report"]  # the data-processing template's own figures


def test_a_token_limited_to_one_project_sees_nothing_of_another(platform: Platform) -> None:
    project = f"secret-{uuid.uuid4().hex[:6]}"
    aiop(platform, "projects", "create", project)
    (platform.root / "greet.yaml").write_text(WORKFLOW)
    aiop(platform, "tasks", "create", "greet", "--workflow", "greet.yaml", "--project", project)
    run = aiop(platform, "tasks", "run", "greet", "--project", project, "--wait")
    limited = aiop(platform, "token", "--project", "default")
    assert limited["projects"] == ["default"]
    headers = {"Authorization": f"Bearer {limited['token']}"}
    with httpx.Client(base_url=platform.gateway_url, headers=headers, timeout=30) as http:
        for path in (f"/v1/projects/{project}", f"/v1/projects/{project}/tasks",
                     f"/v1/projects/{project}/tasks/greet", f"/v1/workflows/{run['workflow_id']}",
                     f"/v1/templates?project={project}", f"/v1/workflows?project={project}"):  # fmt: skip
            assert http.get(path).status_code == 404, path
        listed = http.get("/v1/workflows", params={"limit": 500}).json()["workflows"]
        assert all(r["project"] == "default" for r in listed)
        assert http.get("/v1/projects").json()["projects"][0]["name"] == "default"
    refused = platform.aiop("token", "--project", "nobody-has-this")
    assert refused.returncode == 2
    assert "403" in refused.stderr


def test_an_archived_project_starts_nothing_new(platform: Platform) -> None:
    project = f"old-{uuid.uuid4().hex[:6]}"
    aiop(platform, "projects", "create", project)
    (platform.root / "greet.yaml").write_text(WORKFLOW)
    aiop(platform, "tasks", "create", "greet", "--workflow", "greet.yaml", "--project", project)
    archived = aiop(platform, "projects", "archive", project)
    assert archived["archived_at"]
    refused = platform.aiop("tasks", "run", "greet", "--project", project)
    assert refused.returncode == 2
    assert "archived" in refused.stderr
    assert project not in [p["name"] for p in aiop(platform, "projects", "ls")]
    everything = aiop(platform, "projects", "ls", "--archived")
    assert project in [p["name"] for p in everything]
    again = platform.aiop("projects", "create", project)  # the same creator: it stands
    assert again.returncode == 0, again.stderr
