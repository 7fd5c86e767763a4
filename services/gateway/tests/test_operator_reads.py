"""The operator's reads: the executor fleet from heartbeats on the bus, the step cache's
size and use, run statistics (task-manager's, asked over the bus), and a run's spans
from the trace files."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.cache import KV_STEP_CACHE, OBJ_OUTPUTS, CacheEntry, cache_entry_key
from aiop.contracts.endpoints import GET_WORKFLOW, WORKFLOW_STATS
from aiop.contracts.events import Event, ExecutorCircuitChanged, ExecutorHeartbeat
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.stats import StatsQuery, WorkflowStats
from aiop.devstack.waiting import until
from aiop.servicekit import rpc

from .conftest import Env, running

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VIEW = WorkflowView(workflow_id="wf-1", name="build", project="default", state="succeeded",
                    steps=[], trace_id=TRACE)  # fmt: skip


@pytest.fixture
async def traced(nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """``env`` with a trace dir, and task-manager's answer about wf-1 stubbed."""

    async def view(query: WorkflowQuery) -> WorkflowView:
        return VIEW

    async with running(nats_url, tmp_path, trace_dir=tmp_path / "traces") as env:
        stubs = await rpc.serve(env.nc, "stubs", [(GET_WORKFLOW, view)])
        yield env
        await stubs.stop()


def beat(executor_id: str = "ex-1", **given: Any) -> ExecutorHeartbeat:
    fields: dict[str, Any] = {
        "executor_id": executor_id, "pool": "default", "capabilities": ["dagger", "local"],
        "slots": 7, "running": ["wf-a", "wf-b"], "capacity": 16, "load": 3,
        "runners": ["local", "dagger"], "engine_reachable": True,
        "engine_detail": "dagger CLI, container engine", "circuits": {"dagger": "closed"},
        **given,
    }  # fmt: skip
    return ExecutorHeartbeat(**fields)


async def publish(env: Env, event: Event) -> None:
    """As executors do: core NATS, the JSON event as the body."""
    await env.nc.publish(event.subject(), msgspec.json.encode(event))


async def executor(env: Env, executor_id: str, event: Event | None = None) -> Any:
    """The executor as GET /v1/executors shows it, once it is there (the event is sent
    again while waiting: core NATS keeps nothing for a subscriber not yet listening)."""

    async def seen() -> Any:
        if event is not None:
            await publish(env, event)
        listed = (await env.client.get("/v1/executors", headers=env.bearer())).json()
        return next((e for e in listed["executors"] if e["id"] == executor_id), None)

    return await until(seen, what=f"executor {executor_id} listed")


async def test_an_executor_is_listed_from_its_heartbeat(env: Env) -> None:
    shown = await executor(env, "ex-1", beat())
    assert shown["pool"] == "default"
    assert (shown["slots"], shown["capacity"], shown["load"], shown["running"]) == (7, 16, 3, 2)
    assert shown["runners"] == ["local", "dagger"]
    assert shown["circuits"] == {"dagger": "closed"}
    assert shown["engine"] == {"reachable": True, "detail": "dagger CLI, container engine"}
    assert shown["stale"] is False
    assert shown["age_s"] < 5
    datetime.fromisoformat(shown["last_heartbeat"])
    assert "wf-a" not in json.dumps(shown)  # workflows are counted, never named


async def test_a_circuit_change_shows_before_the_next_heartbeat(env: Env) -> None:
    await executor(env, "ex-2", beat("ex-2", interval_s=60.0))
    opened = ExecutorCircuitChanged(executor_id="ex-2", pool="default", state="half_open",
                                    reason="probing the engine after 30s")  # fmt: skip

    async def half_open() -> Any:
        # Published as executors publish it, into the stream: the gateway hears it on core
        # NATS and must never answer the publish's reply inbox before the stream acks.
        ack = await env.nc.jetstream().publish(opened.subject(), msgspec.json.encode(opened))
        assert ack.stream == "AIOP"
        shown = await executor(env, "ex-2", None)
        return bool(shown["circuits"] == {"dagger": "half-open"})

    await until(half_open, what="the circuit half-open")
    # The next heartbeat says what the executor knows: open, its engine failing.
    failing = beat("ex-2", circuits={"dagger": "open"}, engine_reachable=False,
                   engine_detail="3 engine failures in a row", capabilities=["local"])  # fmt: skip

    async def opened_shown() -> Any:
        shown = await executor(env, "ex-2", failing)
        return bool(
            shown["circuits"] == {"dagger": "open"} and shown["engine"]["reachable"] is False
        )

    await until(opened_shown, what="the circuit open")


async def test_a_silent_executor_turns_stale(env: Env) -> None:
    # It promised a heartbeat every 50 ms; three missed make it stale.
    await executor(env, "ex-3", beat("ex-3", interval_s=0.05))

    async def stale() -> Any:
        return bool((await executor(env, "ex-3"))["stale"])

    assert await until(stale, what="executor ex-3 stale")


async def test_agent_tokens_and_anonymous_callers_are_refused(env: Env) -> None:
    key = SigningKey.load_or_create(env.auth_dir)
    agent = key.sign(token_claims("someone", ["default"], datetime.now(UTC), 600,
                                  agent="ag-0123456789abcdef", capabilities=["ask"]))  # fmt: skip
    for path in ("/v1/executors", "/v1/stats/cache", "/v1/stats", "/v1/workflows/wf-1/trace"):
        assert (await env.client.get(path)).status_code == 401, path
        assert (await env.client.get(path, headers=env.bearer(agent))).status_code == 403, path


async def test_cache_stats_count_entries_bytes_lookups_and_evictions(env: Env) -> None:
    js = env.nc.jetstream()
    kv = await js.key_value(KV_STEP_CACHE)
    store = await js.object_store(OBJ_OUTPUTS)
    await store.put("d" * 64, b"x" * 1000)
    keys = [f"{i:x}" * 64 for i in (10, 11, 12)]
    for key, project in zip(keys, ("default", "default", "other"), strict=True):
        entry = CacheEntry(key=key, result="r", project=project, step="s", workflow_id="wf",
                           attempt=1, created_at=datetime.now(UTC), outputs_digest="d" * 64,
                           outputs_size=1000)  # fmt: skip
        await kv.put(cache_entry_key(key), msgspec.json.encode(entry))
    removed = await env.client.delete(f"/v1/cache/{keys[0]}", headers=env.bearer())
    assert removed.status_code == 200, removed.text

    before = (await env.client.get("/v1/stats/cache", headers=env.bearer())).json()
    assert (before["entries"], before["bytes"], before["removed"]) == (2, 1000, 1)
    assert (before["hits"], before["misses"], before["hit_rate"]) == (0, 0, None)

    started = datetime.now(UTC) - timedelta(seconds=30)
    counted = beat("ex-4", started_at=started, cache_hits=3, cache_misses=1,
                   cache_outputs_gone=1)  # fmt: skip
    await executor(env, "ex-4", counted)
    stats = (await env.client.get("/v1/stats/cache", headers=env.bearer())).json()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (3, 1, 0.75)
    assert (stats["evictions"], stats["outputs_gone"], stats["executors"]) == (2, 1, 1)
    assert 30 <= stats["window_s"] < 60

    # One project: its entries and the outputs they name; another's is not named.
    mine = await env.client.get("/v1/stats/cache?project=default", headers=env.bearer())
    assert (mine.json()["entries"], mine.json()["bytes"]) == (1, 1000)
    theirs = await env.client.get("/v1/stats/cache?project=other", headers=env.bearer())
    assert theirs.status_code == 404


async def test_stats_ask_task_manager_for_the_callers_projects(env: Env) -> None:
    asked: list[StatsQuery] = []

    async def stats(query: StatsQuery) -> WorkflowStats:
        asked.append(query)
        return WorkflowStats(counts={"succeeded": 2}, total=2, series=[], since=query.since,
                             until=query.until, bucket_s=query.bucket_s)  # fmt: skip

    stubs = await rpc.serve(env.nc, "stubs", [(WORKFLOW_STATS, stats)])
    try:
        answer = await env.client.get("/v1/stats?task=nightly&label=env=prod",
                                      headers=env.bearer())  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["counts"] == {"succeeded": 2}
        (query,) = asked
        assert query.visible == ["default"]
        assert query.task == "nightly"
        assert query.labels == {"env": "prod"}
        assert query.bucket_s == 60
        assert query.until - query.since == timedelta(hours=1)  # the default window

        at = "2026-01-01T00:00:00Z"
        refused = {
            "/v1/stats?project=other": 404,
            f"/v1/stats?since={at}&until={at}": 422,  # an empty window
            "/v1/stats?since=yesterday": 422,
            "/v1/stats?bucket_s=1&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z": 422,
            "/v1/stats?bucket_s=0": 422,
        }
        for path, status in refused.items():
            reply = await env.client.get(path, headers=env.bearer())
            assert reply.status_code == status, (path, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
        assert len(asked) == 1  # nothing refused reached task-manager
    finally:
        await stubs.stop()


def span_line(span_id: str, parent: str | None, service: str, start: int, **more: Any) -> str:
    return json.dumps({
        "name": more.pop("name", f"{service} work"),
        "context": {"trace_id": f"0x{more.pop('trace', TRACE)}", "span_id": f"0x{span_id}"},
        "kind": "INTERNAL", "parent_id": f"0x{parent}" if parent else None,
        "start_time_unix_nano": start, "end_time_unix_nano": start + 2_500_000,
        "status": {"status_code": more.pop("status", "UNSET")},
        "attributes": {"aiop.workflow_id": "wf-1"},
        "resource": {"attributes": {"service.name": service}},
    })  # fmt: skip


async def test_a_runs_spans_come_from_every_services_file(traced: Env, tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    t0 = 1_795_327_200_000_000_000
    (folder / "gateway.jsonl").write_text(
        span_line("a" * 16, None, "gateway", t0, name="POST /v1/workflows") + "\n"
        + span_line("f" * 16, None, "gateway", t0, trace="0" * 32) + "\n"  # another trace
        + '{"name": "cut short by a crash, ' + TRACE + "\n"
    )  # fmt: skip
    (folder / "task-manager.jsonl").write_text(
        span_line("b" * 16, "a" * 16, "task-manager", t0 + 1_000_000, status="ERROR") + "\n"
    )

    reply = await traced.client.get("/v1/workflows/wf-1/trace", headers=traced.bearer())

    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert found["trace_id"] == TRACE
    assert found["truncated"] is False
    assert [(s["service"], s["span_id"], s["parent_id"]) for s in found["spans"]] == [
        ("gateway", "a" * 16, None), ("task-manager", "b" * 16, "a" * 16),
    ]  # fmt: skip
    child = found["spans"][1]
    assert (child["start_unix_ns"], child["duration_ms"], child["status"]) == (
        t0 + 1_000_000, 2.5, "error")  # fmt: skip
    assert child["attributes"] == {"aiop.workflow_id": "wf-1"}


async def test_spans_not_stored_here_name_the_trace_to_look_up(traced: Env, tmp_path: Path) -> None:
    reply = await traced.client.get("/v1/workflows/wf-1/trace", headers=traced.bearer())
    assert reply.status_code == 404
    problem = reply.json()
    assert problem["trace_id"] == TRACE
    assert "OTLP" in problem["detail"]
    assert problem["type"] == "urn:aiop:problem:trace-not-stored"


async def test_another_projects_run_has_no_trace(traced: Env, tmp_path: Path) -> None:
    (tmp_path / "traces" / "gateway.jsonl").write_text(span_line("a" * 16, None, "gateway", 1))
    key = SigningKey.load_or_create(traced.auth_dir)
    intruder = key.sign(token_claims("intruder", ["other"], datetime.now(UTC), 600))
    reply = await traced.client.get("/v1/workflows/wf-1/trace", headers=traced.bearer(intruder))
    assert reply.status_code == 404
    assert "trace_id" not in reply.json()  # not even the trace id of another's run


async def test_a_405_names_the_methods_of_its_own_path(env: Env) -> None:
    refused = await env.client.request("OPTIONS", "/v1/stats/cache", headers=env.bearer())
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"
    other = await env.client.request("OPTIONS", "/v1/cache/abc", headers=env.bearer())
    assert other.headers["allow"] == "DELETE"
