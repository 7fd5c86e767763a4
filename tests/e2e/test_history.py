"""The run history as a user meets it through ``aiop up``: runs listed and filtered with
what started each one, paged without gaps or repeats; an Idempotency-Key that names one
workflow per body; a failed run rerun from its failed step, the steps before it reused."""

import json
import uuid
from typing import Any

import pytest

from aiop.devstack import until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

# The first step leaves an output the second checks; the second passes only when told to.
FLAKY = """\
name: e2e-flaky
version: '1'
parameters:
  type: object
  properties:
    ok: {type: string, default: 'no'}
    marker: {type: string, default: ''}
workflow:
  name: flaky
  labels: {suite: history}
  steps:
    - name: prepare
      run: [sh, -c, 'mkdir -p out && echo ${{ params.marker }} > out/prepared']
      outputs: [out]
      cache: false
    - name: check
      needs: [prepare]
      inputs: {prepare: in}
      run: [sh, -c, 'test -f in/out/prepared && test "${{ params.ok }}" = yes']
"""


def aiop_json(platform: Platform, *args: str, timeout: float = 300) -> Any:
    done = platform.aiop(*args, "--json", timeout=timeout)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def flaky_template(platform: Platform) -> None:
    (platform.root / "flaky.yaml").write_text(FLAKY)
    registered = platform.aiop("templates", "register", "flaky.yaml")
    assert registered.returncode == 0, registered.stderr


def test_runs_are_listed_with_what_started_them_and_paged_stably(platform: Platform) -> None:
    flaky_template(platform)
    marker = uuid.uuid4().hex[:8]
    by_cli = aiop_json(platform, "run", "e2e-flaky", "-p", f"marker={marker}", "-p", "ok=yes",
                       "--wait")  # fmt: skip
    assert by_cli["state"] == "succeeded", by_cli
    assert by_cli["origin"] == {"kind": "cli"}
    with platform.http() as http:
        reply = http.post("/v1/templates/e2e-flaky/runs",
                          json={"parameters": {"marker": marker, "ok": "yes"}})  # fmt: skip
        assert reply.status_code == 202, reply.text
        by_api = reply.json()["workflow_id"]

        def listing() -> Any:  # a run is listed once task-manager has taken it, not at 202
            found = http.get("/v1/workflows", params={"template": "e2e-flaky", "limit": 100})
            runs = found.json()["workflows"]
            return found.json() if by_api in [r["workflow_id"] for r in runs] else None

        listed = until_sync(listing, timeout_s=30, what="the run listed")
        ids = [run["workflow_id"] for run in listed["workflows"]]
        assert ids.index(by_api) < ids.index(by_cli["workflow_id"])  # newest first
        origins = {run["workflow_id"]: run["origin"]["kind"] for run in listed["workflows"]}
        assert origins[by_api] == "api"
        assert origins[by_cli["workflow_id"]] == "cli"
        # Paging one run at a time walks the same runs in the same order.
        paged, cursor = [], None
        while True:
            params: dict[str, Any] = {"template": "e2e-flaky", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/workflows", params=params).json()
            paged += [run["workflow_id"] for run in page["workflows"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert paged[: len(ids)] == ids
        assert len(paged) == len(set(paged))
        # Filters: by label and state; by a state nothing is in.
        succeeded = http.get("/v1/workflows", params={"label": "suite=history",
                                                      "state": "succeeded"}).json()  # fmt: skip
        assert by_cli["workflow_id"] in [r["workflow_id"] for r in succeeded["workflows"]]
        none = http.get("/v1/workflows", params={"label": "suite=nothing-has-this"}).json()
        assert none == {"workflows": []}
        bad = http.get("/v1/workflows", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert http.get("/v1/workflows", params={"state": "sleeping"}).status_code == 422
    ls = platform.aiop("ls", "--template", "e2e-flaky", "--limit", "2")
    assert ls.returncode == 0, ls.stderr
    newest, second = ls.stdout.splitlines()
    assert newest.startswith(by_api)
    assert " api " in newest
    assert second.startswith(by_cli["workflow_id"])
    assert " cli " in second
    one = platform.aiop("ls", "--template", "e2e-flaky", "--limit", "1")
    assert one.stdout.splitlines() == [newest]
    assert "--cursor" in one.stderr  # there are more


def test_an_idempotency_key_names_one_workflow_per_body(platform: Platform) -> None:
    key = {"Idempotency-Key": f"history-{uuid.uuid4().hex}"}
    body = {"name": "once", "steps": [{"name": "a", "run": ["true"]}]}
    with platform.http() as http:
        first = http.post("/v1/workflows", json=body, headers=key)
        again = http.post("/v1/workflows", json=body, headers=key)
        assert first.status_code == again.status_code == 202
        assert first.json()["workflow_id"] == again.json()["workflow_id"]
        other = http.post("/v1/workflows", json={**body, "name": "twice"}, headers=key)
        assert other.status_code == 409, other.text
        assert other.headers["content-type"].startswith("application/problem+json")
        assert first.json()["workflow_id"] in other.json()["detail"]


def test_a_failed_run_reruns_from_its_failed_step(platform: Platform) -> None:
    flaky_template(platform)
    marker = uuid.uuid4().hex  # a fresh first step: nothing in the cache to hit
    failed = aiop_json(platform, "run", "e2e-flaky", "-p", f"marker={marker}", "--wait")
    assert failed["state"] == "failed", failed
    steps = {s["name"]: s for s in failed["steps"]}
    assert steps["prepare"]["state"] == "succeeded"
    assert steps["check"]["state"] == "failed"

    rerun = aiop_json(platform, "rerun", failed["workflow_id"], "-p", "ok=yes", "--wait")
    assert rerun["state"] == "succeeded", rerun
    assert rerun["origin"] == {"kind": "rerun", "rerun_of": failed["workflow_id"]}
    assert rerun["parameters"] == {"ok": "yes", "marker": marker}
    again = {s["name"]: s for s in rerun["steps"]}
    assert again["prepare"]["state"] == "cached"  # reused, with its outputs: check used them
    assert again["check"]["state"] == "succeeded"
    # The run it came from is unchanged.
    before = aiop_json(platform, "status", failed["workflow_id"])
    assert before["state"] == "failed"
    assert [(s["name"], s["state"]) for s in before["steps"]] == [
        ("prepare", "succeeded"), ("check", "failed")]  # fmt: skip
    # From a named step, the steps before it are reused and it runs again.
    from_check = aiop_json(platform, "rerun", rerun["workflow_id"], "--from", "check", "--wait")
    assert from_check["state"] == "succeeded", from_check
    assert [s["state"] for s in from_check["steps"]] == ["cached", "succeeded"]
    listed = aiop_json(platform, "ls", "--template", "e2e-flaky", "--limit", "5")
    origins = {r["workflow_id"]: r["origin"] for r in listed["workflows"]}
    assert origins[from_check["workflow_id"]] == {"kind": "rerun",
                                                  "rerun_of": rerun["workflow_id"]}  # fmt: skip
    with platform.http() as http:
        running_nothing = http.post(f"/v1/workflows/{rerun['workflow_id']}/rerun", json={})
        assert running_nothing.status_code == 409  # succeeded: say from which step
        unknown = http.post(f"/v1/workflows/{failed['workflow_id']}/rerun",
                            json={"from": "no-such-step"})  # fmt: skip
        assert unknown.status_code == 422
