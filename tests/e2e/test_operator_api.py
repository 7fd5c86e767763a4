"""What an operator reads of a running platform (``aiop up``): its executors, run
statistics that count a run just made, the step cache's use, and a run's spans across
the services."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from aiop.client import Client
from aiop.client.errors import NotFound
from aiop.client.types import ExecutorView, WorkflowTrace
from aiop.devstack import until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

NAME = "operator-e2e"


def test_a_run_is_counted_traced_and_run_by_a_listed_executor(platform: Platform) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    body = {"name": NAME, "labels": {"suite": "operator"},
            "steps": [{"name": "one", "run": ["echo", "hi"], "cache": False}]}  # fmt: skip
    with Client(platform.gateway_url, token=platform.token) as client:
        workflow_id = client.submit(body)
        view = client.wait(workflow_id, timeout=60)
        assert view["state"] == "succeeded"

        # The platform's executor heartbeats: listed, live, its engine as it knows it; a
        # gateway that just started hears it within one heartbeat interval. (An executor
        # another test restarted stays listed, stale, for a few minutes.)
        def live_executors() -> list[ExecutorView]:
            return [e for e in client.executors() if not e["stale"] and e["pool"] == "default"]

        live = until_sync(live_executors, 10, "a live executor listed")
        assert all(e["capacity"] > 0 and "local" in e["runners"] for e in live)
        assert all(e["engine"]["reachable"] is not True for e in live)  # no Dagger here

        # The run is counted: in its state, and among those that ended in the window.
        window = {"since": started.isoformat(), "label": "suite=operator", "bucket_s": 3600}
        stats = client.stats(**window)
        assert stats["counts"].get("succeeded", 0) >= 1
        assert stats["total"] == sum(stats["counts"].values())
        (bucket,) = stats["series"]
        assert bucket["finished"] >= 1
        assert (bucket["p50_ms"] or 0) > 0

        # Its spans, from more than one service's file (exported every 200 ms).
        def traced() -> WorkflowTrace | None:
            try:
                found = client.trace(workflow_id)
            except NotFound:  # nothing of it exported yet
                return None
            return found if len({s["service"] for s in found["spans"]}) > 1 else None

        trace = until_sync(traced, 15, "spans from several services")
        assert trace is not None
        assert trace["trace_id"] == view["trace_id"]
        starts = [s["start_unix_ns"] for s in trace["spans"]]
        assert starts == sorted(starts)

        cache = client.cache_stats()
        assert cache["executors"] >= 1
        assert cache["entries"] >= 0


def test_aiop_executors_lists_the_fleet(platform: Platform) -> None:
    done = platform.aiop("executors", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert "default" in {e["pool"] for e in listed}
    human = platform.aiop("executors")
    assert "default" in human.stdout
