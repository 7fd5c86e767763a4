"""GET /v1/workflows/{id}/events against a real nats-server and a stub task-manager: one
workflow's events from stream AIOP in stream order, whole or followed to the event that
ended it, resumed after Last-Event-ID."""

import asyncio
import json
from typing import Any

import pytest

from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import (
    Event,
    StepCompleted,
    StepProgress,
    StepStarted,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowRequested,
)
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.states import WorkflowState
from aiop.contracts.workflow import WorkflowSpec
from aiop.servicekit import rpc

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration

WF, OTHER, HIDDEN = "wf-events", "wf-other", "wf-hidden"
SPEC = WorkflowSpec(**{**GOOD, "steps": []})


async def stub_task_manager(env: Env, views: dict[str, WorkflowView]) -> Any:
    async def get(query: WorkflowQuery) -> WorkflowView:
        if query.workflow_id not in views:
            raise rpc.QueryFailed(404, "unknown workflow")
        return views[query.workflow_id]

    return await rpc.serve(env.nc, "task-manager-stub", [(GET_WORKFLOW, get)])


def view(workflow_id: str, state: WorkflowState, project: str = "default") -> WorkflowView:
    return WorkflowView(workflow_id=workflow_id, name="build", project=project, state=state,
                        steps=[])  # fmt: skip


async def publish(env: Env, *events: Event) -> None:
    js = env.nc.jetstream()
    for event in events:
        envelope = encode_event(event, "test")
        await js.publish(envelope.subject, envelope.body, headers=envelope.headers)


def sse(text: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(event, id, data) of each event in an event stream."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        found.append((lines["event"], lines.get("id"), json.loads(lines["data"])))
    return found


async def test_a_workflows_events_whole_then_followed_to_its_end(env: Env) -> None:
    views = {WF: view(WF, "running"), HIDDEN: view(HIDDEN, "running", project="secret")}
    service = await stub_task_manager(env, views)
    await publish(
        env,
        WorkflowAccepted(workflow_id=WF, spec=SPEC),
        WorkflowRequested(workflow_id=WF, pool="default", spec=SPEC),  # routed by pool first
        StepStarted(workflow_id=WF, step="compile"),
        StepStarted(workflow_id=OTHER, step="compile"),
        StepCompleted(workflow_id=WF, step="compile"),
    )
    reply = await env.client.get(f"/v1/workflows/{WF}/events", headers=env.bearer())
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["state"] == "running"
    assert [e["type"] for e in page["events"]] == [
        "aiop.workflow.accepted.v1", "aiop.workflow.requested.v1", "aiop.step.started.v1",
        "aiop.step.completed.v1",
    ]  # fmt: skip
    assert {e["event"]["workflow_id"] for e in page["events"]} == {WF}
    seqs = [e["seq"] for e in page["events"]]
    assert seqs == sorted(seqs)

    # Followed: what is stored, then what comes, up to the end and no further.
    follow = asyncio.create_task(
        env.client.get(f"/v1/workflows/{WF}/events", params={"follow": "true"},
                       headers=env.bearer())
    )  # fmt: skip
    await publish(
        env,
        WorkflowCompleted(workflow_id=WF, executor_id="e1"),
        StepProgress(workflow_id=WF, step="compile", message="late"),
    )
    followed = sse((await asyncio.wait_for(follow, 10)).text)
    assert [data.get("type") for _, _, data in followed] == [
        *(e["type"] for e in page["events"]), "aiop.workflow.completed.v1", None,
    ]  # fmt: skip
    assert followed[-1] == ("end", None, {"state": "succeeded"})
    assert [int(id_ or 0) for _, id_, _ in followed[:4]] == seqs

    # Resumed after an event: the rest up to the end. Resumed after the end: what came
    # later, then task-manager's word that the workflow ended.
    after = {"Last-Event-ID": str(seqs[2]), "Accept": "text/event-stream"}
    resumed = await env.client.get(f"/v1/workflows/{WF}/events", headers={**env.bearer(), **after})
    assert [kind for kind, _, _ in sse(resumed.text)] == ["event", "event", "end"]
    views[WF] = view(WF, "succeeded")
    last = {"Last-Event-ID": followed[-2][1] or "", "Accept": "text/event-stream"}
    ended = await env.client.get(f"/v1/workflows/{WF}/events", headers={**env.bearer(), **last})
    late = sse(ended.text)
    assert [(kind, data.get("type")) for kind, _, data in late] == [
        ("event", "aiop.step.progress.v1"), ("end", None)]  # fmt: skip
    assert late[-1][2] == {"state": "succeeded"}

    for hidden in ("no-such-workflow", HIDDEN):  # not even named
        reply = await env.client.get(f"/v1/workflows/{hidden}/events", headers=env.bearer())
        assert reply.status_code == 404, reply.text
    await service.stop()
