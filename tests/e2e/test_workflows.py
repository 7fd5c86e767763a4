"""A user's first hour, end to end: submit, watch, read status, tail and trace."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.devstack import until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

SERVICES = {"gateway", "auth", "task-manager", "distributor", "dagger-executor", "reporter"}


def uncached(platform: Platform, example: str) -> str:
    """A copy of ``example`` whose steps opt out of the step cache: it runs every time,
    whatever ran before in this platform."""
    spec = yaml.safe_load((platform.root / example).read_text())
    for step in spec["steps"]:
        step["cache"] = False
    path = platform.root / f"uncached-{Path(example).name}"
    path.write_text(yaml.safe_dump(spec))
    return path.name


def wait_terminal(platform: Platform, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
    with platform.http() as http:

        def terminal() -> dict[str, Any] | None:
            view: dict[str, Any] = http.get(f"/v1/workflows/{workflow_id}").json()
            return view if view["state"] in TERMINAL_WORKFLOW_STATES else None

        return until_sync(terminal, timeout, f"workflow {workflow_id} finished")


def test_cli_submit_wait_succeeds(platform: Platform) -> None:
    done = platform.aiop("submit", uncached(platform, "examples/hello.yaml"), "--wait", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["state"] == "succeeded"
    assert [s["name"] for s in view["steps"]] == ["greet", "count", "environment", "done"]
    assert {s["state"] for s in view["steps"]} == {"succeeded"}
    assert all(s["exit_code"] == 0 and s["duration_s"] is not None for s in view["steps"])
    assert {s["runner"] for s in view["steps"]} == {"local"}  # no Dagger engine here

    shown = platform.aiop("status", view["workflow_id"])
    assert shown.returncode == 0
    assert "succeeded" in shown.stdout
    assert "greet" in shown.stdout


def test_failing_step_fails_workflow_with_exit_code_and_tail(platform: Platform) -> None:
    done = platform.aiop("submit", "examples/failing.yaml", "--wait", "--json")
    assert done.returncode == 1, done.stderr
    view = json.loads(done.stdout)
    assert view["state"] == "failed"
    steps = {s["name"]: s for s in view["steps"]}
    assert steps["prepare"]["state"] == "succeeded"
    assert steps["check"]["state"] == "failed"
    assert steps["check"]["exit_code"] == 3
    assert "input 7 is malformed" in steps["check"]["output_tail"]
    assert steps["publish"]["state"] == "skipped"


def test_http_submit_answers_202_at_once_then_runs(platform: Platform) -> None:
    spec = {"name": "http", "steps": [{"name": "one", "run": ["echo", "hi"]}]}
    with platform.http() as http:
        reply = http.post("/v1/workflows", json=spec)
        assert reply.status_code == 202
        workflow_id = reply.json()["workflow_id"]
        assert reply.headers["location"].endswith(workflow_id)
        # Right after the 202 the workflow is known, even before task-manager has it.
        assert http.get(f"/v1/workflows/{workflow_id}").status_code == 200
    assert wait_terminal(platform, workflow_id)["state"] == "succeeded"


def test_bad_input_is_a_problem_and_nothing_runs(platform: Platform) -> None:
    cycle = platform.aiop("submit", "examples/cycle.yaml")
    assert cycle.returncode == 2
    assert "cycle" in cycle.stderr
    with platform.http() as http:
        reply = http.post(
            "/v1/workflows", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert reply.status_code == 400
        assert reply.headers["content-type"].startswith("application/problem+json")
        no_token = http.get("/v1/workflows/x", headers={"Authorization": "Bearer nope"})
        assert no_token.status_code == 401


def test_tail_prints_a_workflows_events(platform: Platform) -> None:
    done = platform.aiop("submit", uncached(platform, "examples/hello.yaml"), "--wait", "--json")
    workflow_id = json.loads(done.stdout)["workflow_id"]
    tailed = platform.aiop("tail", "--workflow", workflow_id, "--all", "--idle", "1", "--json")
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "aiop.workflow.submitted.v1"
    assert "aiop.workflow.started.v1" in types
    assert types.count("aiop.step.completed.v1") == 4
    # In stream order: every step event of the run before the workflow's end.
    assert types[-1] == "aiop.workflow.completed.v1"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert all(e["workflow_id"] == workflow_id for e in events)
    human = platform.aiop("tail", "--workflow", workflow_id, "--all", "--idle", "1")
    assert "workflow.completed" in human.stdout
    bad = platform.aiop("tail", "--workflow", "wf.*", "--idle", "1")
    assert bad.returncode == 2
    assert "workflow id" in bad.stderr


def test_trace_spans_all_six_services(platform: Platform) -> None:
    done = platform.aiop("submit", uncached(platform, "examples/hello.yaml"), "--wait", "--json")
    workflow_id = json.loads(done.stdout)["workflow_id"]

    # Spans are exported in batches every 200 ms: give the exporters a bounded moment.
    def all_services_traced() -> set[str] | None:
        traced = platform.aiop("trace", workflow_id, "--json")
        assert traced.returncode == 0, traced.stderr
        spans = json.loads(traced.stdout)["spans"]
        assert len({s["context"]["trace_id"] for s in spans}) == 1
        services = {s["resource"]["attributes"]["service.name"] for s in spans}
        return services if services == SERVICES else None

    until_sync(all_services_traced, 15, "spans from all six services")
    human = platform.aiop("trace", workflow_id)
    assert "6 services" in human.stdout


def test_a_flaky_step_is_retried_and_a_hung_one_times_out(platform: Platform) -> None:
    done = platform.aiop("submit", "examples/retries.yaml", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    flaky = {s["name"]: s for s in view["steps"]}["flaky"]
    assert (flaky["state"], flaky["tries"], flaky["exit_code"]) == ("succeeded", 2, 0)
    tailed = platform.aiop("tail", "--workflow", view["workflow_id"], "--all", "--idle", "1")
    assert "step flaky try 1 failed (exit 75)" in tailed.stdout
    logs = platform.aiop("logs", view["workflow_id"])
    assert "service not ready" in logs.stdout
    assert "[aiop] try 1 of 3 failed: exited with code 75" in logs.stdout

    hung = platform.aiop("submit", "examples/timeout.yaml", "--wait", "--json")
    assert hung.returncode == 1, hung.stderr
    view = json.loads(hung.stdout)
    (step,) = view["steps"]
    assert view["state"] == "failed"
    assert step["state"] == "timed_out"
    assert "timed out after 1s" in step["error"]
    shown = platform.aiop("status", view["workflow_id"])
    assert "timed_out" in shown.stdout


def test_cancel_stops_a_running_workflow_and_a_queued_one(platform: Platform) -> None:
    submitted = platform.aiop("submit", "examples/long.yaml")
    assert submitted.returncode == 0, submitted.stderr
    workflow_id = submitted.stdout.strip()
    with platform.http() as http:

        def running() -> bool:
            steps = http.get(f"/v1/workflows/{workflow_id}").json()["steps"]
            return any(s["name"] == "wait" and s["state"] == "running" for s in steps)

        until_sync(running, 30, "the long step runs")
    done = platform.aiop("cancel", workflow_id, "--wait", "--timeout", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "cancelled"
    view = wait_terminal(platform, workflow_id)
    steps = {s["name"]: s for s in view["steps"]}
    assert view["state"] == "cancelled"
    assert steps["wait"]["state"] == "cancelled"
    assert steps["report"]["state"] == "skipped"
    again = platform.aiop("cancel", workflow_id)
    assert again.returncode == 0
    assert "already ended cancelled; nothing to cancel" in again.stdout
    tailed = platform.aiop("tail", "--workflow", workflow_id, "--all", "--idle", "1", "--json")
    types = [json.loads(line)["type"] for line in tailed.stdout.splitlines()]
    assert "aiop.workflow.cancelled.v1" in types
    assert types.count("aiop.step.started.v1") == 1  # "report" never started

    # No executor offers "gpu": the workflow waits in the queue, and is cancelled there.
    spec = {"name": "gpu", "requires": ["gpu"], "steps": [{"name": "s", "run": ["true"]}]}
    with platform.http() as http:
        queued_id = http.post("/v1/workflows", json=spec).json()["workflow_id"]
        until_sync(lambda: http.get(f"/v1/workflows/{queued_id}").json()["state"] == "queued",
                   30, "the gpu workflow is queued")  # fmt: skip
        reply = http.post(f"/v1/workflows/{queued_id}/cancel")
        assert reply.status_code == 202, reply.text
    view = wait_terminal(platform, queued_id)
    assert (view["state"], view["executor_id"]) == ("cancelled", None)
    assert view["steps"][0]["state"] == "skipped"
    unknown = platform.aiop("cancel", "no-such-workflow")
    assert unknown.returncode == 1
    assert "404" in unknown.stderr


TICKER = {
    "name": "ticker",
    "steps": [
        # Says "tick" and waits to be cancelled: whatever the follower shows came live.
        {"name": "ticker", "run": ["sh", "-c", "echo tick; echo warn >&2; sleep 120"]},
        {"name": "other", "run": ["sh", "-c", "echo from-other; sleep 120"]},
    ],
}


def test_logs_follow_a_step_live_and_read_back_after_the_end(platform: Platform) -> None:
    with platform.http() as http:
        workflow_id = http.post("/v1/workflows", json=TICKER).json()["workflow_id"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "aiop.cli", "logs", workflow_id, "--step", "ticker", "-f"],
        cwd=platform.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIOP_")},
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()  # blocks until the step's first line arrives
        assert first == "ticker | tick\n"
        assert wait_state(platform, workflow_id) == "running"  # seen live, not read back
        assert platform.aiop("cancel", workflow_id).returncode == 0
        follower.wait(timeout=30)
        assert follower.stderr is not None
        out, err = follower.stdout.read(), follower.stderr.read()  # read() takes what
        # readline() buffered; communicate() would read past it
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert out == "ticker | warn\n"  # the rest of its output; "other" is filtered out
    assert f"workflow {workflow_id} ended cancelled" in err

    back = platform.aiop("logs", workflow_id, "--json")
    entries = [json.loads(line) for line in back.stdout.splitlines()]
    assert {(e["step"], e["text"]) for e in entries} >= {("ticker", "tick\n"),
                                                        ("other", "from-other\n")}  # fmt: skip
    with platform.http() as http:
        first_seq = min(e["seq"] for e in entries)
        later = http.get(f"/v1/workflows/{workflow_id}/logs", params={"after": first_seq})
        assert later.status_code == 200, later.text
        assert [e["seq"] for e in later.json()["entries"]] == sorted(
            e["seq"] for e in entries if e["seq"] > first_seq
        )
        with http.stream("GET", f"/v1/workflows/{workflow_id}/logs",
                         headers={"Accept": "text/event-stream",
                                  "Last-Event-ID": str(first_seq)}) as sse:  # fmt: skip
            body = sse.read().decode()
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert f"id: {first_seq}\n" not in body
        assert body.endswith('event: end\ndata: {"state":"cancelled"}\n\n')
        missing = http.get(f"/v1/workflows/{workflow_id}/logs", params={"step": "nope"})
        assert missing.status_code == 404


def wait_state(platform: Platform, workflow_id: str) -> str:
    with platform.http() as http:
        return str(http.get(f"/v1/workflows/{workflow_id}").json()["state"])


def test_a_second_run_reuses_results_and_the_cache_is_managed(platform: Platform) -> None:
    first = platform.aiop("submit", "examples/build.yaml", "--wait", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    states = {s["name"]: s["state"] for s in json.loads(first.stdout)["steps"]}
    assert states == {"compile": "succeeded", "test": "succeeded", "publish": "succeeded"}
    second = platform.aiop("submit", "examples/build.yaml", "--wait", "--json")
    view = json.loads(second.stdout)
    states = {s["name"]: s["state"] for s in view["steps"]}
    assert states == {"compile": "cached", "test": "cached", "publish": "succeeded"}
    logs = platform.aiop("logs", view["workflow_id"], "--step", "publish")
    assert "publishing passed" in logs.stdout  # test's outputs were restored for it

    listed = json.loads(platform.aiop("cache", "ls", "--json").stdout)
    mine = {e["step"]: e for e in listed["entries"] if e["step"] in ("compile", "test")}
    assert set(mine) == {"compile", "test"}
    assert mine["compile"]["outputs_size"] > 0
    removed = platform.aiop("cache", "rm", mine["compile"]["key"])
    assert removed.returncode == 0, removed.stderr
    third = json.loads(platform.aiop("submit", "examples/build.yaml", "--wait", "--json").stdout)
    states = {s["name"]: s["state"] for s in third["steps"]}
    # compile runs again; its outputs are the same bytes, so test's key is unchanged.
    assert states == {"compile": "succeeded", "test": "cached", "publish": "succeeded"}
    pruned = json.loads(platform.aiop("cache", "prune", "--json").stdout)
    assert pruned["removed_entries"] >= 2
    assert json.loads(platform.aiop("cache", "ls", "--json").stdout)["entries"] == []
    bad = platform.aiop("cache", "rm", "not-a-key")
    assert bad.returncode == 2
    assert "64 hexadecimal digits" in bad.stderr
