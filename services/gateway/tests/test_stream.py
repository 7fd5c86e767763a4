"""GET /v1/stream against a real nats-server: the live tail of the event streams, with
`aiop tail`'s subject filters, each caller seeing its own projects' workflows only, the
executors' circuit changes and (with the default project) the platform's dead letters,
resumed after the Last-Event-ID it was sent."""

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import (
    DeadLetterRecorded,
    Event,
    ExecutorCircuitChanged,
    StepCompleted,
    StepStarted,
    WorkflowSubmitted,
)
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.workflow import WorkflowSpec
from aiop.gateway.console.transport import StreamingASGITransport
from aiop.servicekit import rpc

from .conftest import GOOD, Env, running

pytestmark = pytest.mark.integration

Sent = tuple[str, str | None, dict[str, Any]]  # (event, id, data)
IDLE = {"idle_s": "0.5"}  # the tail ends once the stored events were sent and all is quiet


@pytest.fixture
async def stored(env: Env) -> AsyncIterator[datetime]:
    """Two projects' runs, a run nobody knows, a circuit change and a platform dead
    letter, stored; task-manager knows the first two. Yields a time before them all."""
    views = {
        wf: WorkflowView(workflow_id=wf, name="b", project=project, state="running", steps=[])
        for wf, project in [("wf-mine", "default"), ("wf-other", "other")]
    }

    async def get(query: WorkflowQuery) -> WorkflowView:
        if query.workflow_id not in views:
            raise rpc.QueryFailed(404, "unknown workflow")
        return views[query.workflow_id]

    stubs = await rpc.serve(env.nc, "task-manager-stub", [(GET_WORKFLOW, get)])
    before = datetime.now(UTC) - timedelta(seconds=1)
    spec = WorkflowSpec(**GOOD)  # project default
    await publish(
        env,
        WorkflowSubmitted(workflow_id="wf-mine", spec=spec, principal="dev"),
        StepStarted(workflow_id="wf-mine", step="compile"),
        StepStarted(workflow_id="wf-other", step="compile"),  # another project's
        StepStarted(workflow_id="wf-ghost", step="compile"),  # no one knows whose
        ExecutorCircuitChanged(executor_id="ex-1", pool="default", state="open", reason="x"),
        DeadLetterRecorded(stream="AIOP_EXT", consumer="task-manager-external",
                           original_subject="ext.shop.noise", stream_seq=1,
                           reason="Permanent: not a CloudEvent", deliveries=1, payload=b"hi"),
        StepCompleted(workflow_id="wf-mine", step="compile"),
        StepCompleted(workflow_id="wf-other", step="compile"),
    )  # fmt: skip
    yield before
    await stubs.stop()


async def publish(env: Env, *events: Event) -> None:
    js = env.nc.jetstream()
    for event in events:
        envelope = encode_event(event, "test")
        if isinstance(event, ExecutorCircuitChanged):
            # Stored all the same; the gateway also listens to these on core NATS, and a
            # listener's answer to a request could come before the stream's ack.
            await env.nc.publish(envelope.subject, envelope.body, headers=envelope.headers)
            continue
        await js.publish(envelope.subject, envelope.body, headers=envelope.headers)


def sse(text: str) -> list[Sent]:
    """(event, id, data) of each event of an event stream, comments left out."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], lines.get("id"), json.loads(lines["data"])))
    return found


async def tail(env: Env, token: str | None = None, headers: dict[str, str] | None = None,
               **params: Any) -> list[Sent]:  # fmt: skip
    reply = await env.client.get("/v1/stream", params={**IDLE, **params},
                                 headers={**env.bearer(token), **(headers or {})})  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse(reply.text)
    assert events[-1][:1] == ("end",)
    return events[:-1]


def of(events: list[Sent], stream: str) -> list[Sent]:
    return [event for event in events if event[2]["stream"] == stream]


def summaries(events: list[Sent]) -> list[tuple[str, str]]:
    return [(kind, data["summary"]) for kind, _, data in events]


async def test_each_caller_sees_its_projects_workflows_only(env: Env, stored: datetime) -> None:
    mine = await tail(env, since=stored.isoformat())
    # Each stream in its order; no order across the two.
    assert summaries(of(mine, "AIOP")) == [
        ("aiop.workflow.submitted.v1", "'build' with 2 steps by dev"),
        ("aiop.step.started.v1", "step compile"),
        ("aiop.executor.circuit.v1",
         "ex-1 (pool default): Dagger circuit open, steps run locally: x"),
        ("aiop.step.completed.v1", "step compile exit 0 in 0.000s"),
    ]  # fmt: skip
    assert summaries(of(mine, "AIOP_DLQ")) == [
        ("aiop.dlq.recorded.v1",
         "ext.shop.noise from task-manager-external: Permanent: not a CloudEvent"),
    ]  # fmt: skip
    mine = of(mine, "AIOP")
    data = mine[1][2]
    assert (data["stream"], data["subject"]) == ("AIOP", "aiop.step.started.v1.wf-mine")
    assert data["workflow_id"] == "wf-mine"
    assert data["event"]["step"] == "compile"

    key = SigningKey.load_or_create(env.auth_dir)
    theirs = key.sign(token_claims("them", ["other"], datetime.now(UTC), 600))
    assert summaries(await tail(env, theirs, since="1m")) == [
        ("aiop.step.started.v1", "step compile"),
        ("aiop.executor.circuit.v1",
         "ex-1 (pool default): Dagger circuit open, steps run locally: x"),
        ("aiop.step.completed.v1", "step compile exit 0 in 0.000s"),
    ]  # fmt: skip
    # Another project's workflow is not even named.
    reply = await env.client.get("/v1/stream", params={"workflow": "wf-other", **IDLE},
                                 headers=env.bearer())  # fmt: skip
    assert reply.status_code == 404, reply.text


async def test_subject_filters_and_a_workflow(env: Env, stored: datetime) -> None:
    steps = await tail(env, since=stored.isoformat(), subject="aiop.step.*.v1.*")
    assert [kind for kind, _, _ in steps] == ["aiop.step.started.v1", "aiop.step.completed.v1"]
    assert [id_ for _, id_, _ in steps] == [str(d["seq"]) for _, _, d in steps]  # one stream
    both = await tail(env, since="1m", subject=["aiop.step.completed.>", "aiop.dlq.>"])
    assert sorted(kind for kind, _, _ in both) == ["aiop.dlq.recorded.v1", "aiop.step.completed.v1"]
    one = await tail(env, since="1m", workflow="wf-mine")
    assert {data["workflow_id"] for _, _, data in one} == {"wf-mine"}
    assert len(one) == 3

    for bad in ["aiop..x", "aiop.>.x", "a b", "ext.>", "aiop.agent.work.>", "aiop.wor*"]:
        reply = await env.client.get("/v1/stream", params={"subject": bad}, headers=env.bearer())
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["type"] == "urn:aiop:problem:bad-pattern"
    for params in [{"subject": ["aiop.>"] * 33}, {"subject": "aiop.dlq.>", "workflow": "wf-mine"}]:
        reply = await env.client.get("/v1/stream", params=params, headers=env.bearer())
        assert reply.status_code == 400, (params, reply.text)
    reply = await env.client.get("/v1/stream", params={"since": "yesterday"},
                                 headers=env.bearer())  # fmt: skip
    assert reply.status_code == 400, reply.text


async def test_resumed_after_the_last_event_id(env: Env, stored: datetime) -> None:
    since = stored.isoformat()
    first = await tail(env, since=since)
    # Sent back with the same query: each stream the id names goes on after it, one it
    # does not name yet (no event of it was sent before) starts at ``since`` again.
    for _, resume, _ in first:
        at = {s: int(n) for s, n in (part.split(":") for part in (resume or "").split(","))}
        rest = await tail(env, headers={"Last-Event-ID": resume or ""}, since=since)
        after = {(d["stream"], d["seq"]) for _, _, d in first if d["seq"] > at.get(d["stream"], 0)}
        assert {(d["stream"], d["seq"]) for _, _, d in rest} == after
    assert set(at) == {"AIOP", "AIOP_DLQ"}
    # From the last id on, only what comes later: here, a new step of the run.
    await publish(env, StepStarted(workflow_id="wf-mine", step="test"))
    later = await tail(env, headers={"Last-Event-ID": first[-1][1] or ""})
    assert summaries(later) == [("aiop.step.started.v1", "step test")]
    # Asked for JSON: the same events as one page, up to the first quiet moment.
    page = await env.client.get("/v1/stream", params={"since": since},
                                headers={**env.bearer(), "Accept": "application/json"})  # fmt: skip
    assert page.status_code == 200, page.text
    assert {(e["stream"], e["seq"]) for e in page.json()["events"]} == {
        (d["stream"], d["seq"]) for _, _, d in [*first, *later]
    }
    assert page.json()["last_event_id"].startswith("AIOP:")
    # Without an id or since, a tail starts at the end: nothing stored is sent.
    assert await tail(env) == []


async def test_a_caller_may_keep_only_so_many_tails_open(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path, max_tails_per_caller=2) as env:
        assert env.app is not None
        streaming = httpx.AsyncClient(
            transport=StreamingASGITransport(env.app), base_url="http://gateway",
            headers={**env.bearer(), "Accept": "text/event-stream"}, timeout=10,
        )  # fmt: skip
        async with streaming:
            async with contextlib.AsyncExitStack() as open_tails:
                for _ in range(2):
                    tail = await open_tails.enter_async_context(
                        streaming.stream("GET", "/v1/stream")
                    )
                    assert tail.status_code == 200
                refused = await streaming.get("/v1/stream")
                assert refused.status_code == 429
                assert refused.json()["type"].endswith("too-many-tails")
                assert "2 live tails" in refused.json()["detail"]
                paged = await streaming.get("/v1/stream", headers={"Accept": "application/json"})
                assert paged.status_code == 200  # a page holds nothing open
            # Both closed: their slots are given back.
            async with streaming.stream("GET", "/v1/stream") as tail:
                assert tail.status_code == 200
