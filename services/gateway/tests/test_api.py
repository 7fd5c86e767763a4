"""The HTTP API against a real nats-server, auth in-process and a stub task-manager."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts import WorkflowSubmitted, decode_event
from aiop.contracts.cancels import decode_cancel
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.contracts.subjects import KV_CANCELS
from aiop.servicekit import rpc

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration


def with_steps(*steps: dict[str, Any], project: str = "default") -> dict[str, Any]:
    return {"name": "wf", "project": project, "steps": list(steps)}


async def refused(env: Env, status: int, **kwargs: Any) -> dict[str, Any]:
    """POST a workflow, expect a problem with ``status`` and nothing published."""
    kwargs.setdefault("headers", env.bearer())
    reply = await env.client.post("/v1/workflows", **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    assert await env.published() == 0
    return body


async def test_healthz_needs_no_token(env: Env) -> None:
    reply = await env.client.get("/healthz")
    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})


async def test_bad_api_key_is_401(env: Env) -> None:
    reply = await env.client.post("/v1/tokens", json={"api_key": "aiop_wrong"})
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"


async def test_missing_bad_and_expired_tokens_are_401(env: Env) -> None:
    key = SigningKey.load_or_create(env.auth_dir)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    expired = key.sign(token_claims("dev", ["default"], long_ago, 60))
    tampered = env.token[:-4] + ("AAAA" if not env.token.endswith("AAAA") else "BBBB")
    for headers in ({}, env.bearer("not-a-jwt"), env.bearer(expired), env.bearer(tampered)):
        await refused(env, 401, json=GOOD, headers=headers)
        reply = await env.client.get("/v1/workflows/abc", headers=headers)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_project_not_granted_is_403(env: Env) -> None:
    body = await refused(env, 403, json={**GOOD, "project": "secret"})
    assert "secret" in body["detail"]


async def test_malformed_and_oversize_bodies(env: Env) -> None:
    headers = {**env.bearer(), "content-type": "application/json"}
    await refused(env, 400, content=b'{"name": ', headers=headers)
    huge = msgspec.json.encode({**GOOD, "labels": {"x": "y" * 70_000}})
    await refused(env, 413, content=huge, headers=headers)

    async def chunks():  # no Content-Length: the limit applies to the bytes read
        for _ in range(100):
            yield b" " * 1024

    await refused(env, 413, content=chunks(), headers=headers)


async def test_shape_errors_are_each_listed(env: Env) -> None:
    body = await refused(env, 422, json={"name": 3, "steps": [{"name": "a", "run": "make"}, {}]})
    pointers = {e["pointer"] for e in body["errors"]}
    assert {"/name", "/steps/0/run", "/steps/1/name", "/steps/1/run"} <= pointers


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [
                {"name": "a", "run": ["x"], "needs": ["b"]},
                {"name": "b", "run": ["x"], "needs": ["a"]},
            ],
            "cycle",
        ),
        ([{"name": "a", "run": ["x"], "needs": ["ghost"]}], "unknown step 'ghost'"),
        ([{"name": "a", "run": []}], "empty run argv"),
        ([{"name": "bad name", "run": ["x"]}], "step name"),
    ],
)
async def test_workflows_that_cannot_run_are_422(
    env: Env, steps: list[dict[str, Any]], expected: str
) -> None:
    body = await refused(env, 422, json=with_steps(*steps))
    assert any(expected in e["detail"] for e in body["errors"]), body


async def test_submit_publishes_with_the_trace_and_answers_202(env: Env) -> None:
    sub = await env.nc.subscribe("aiop.workflow.submitted.v1.>")
    reply = await env.client.post("/v1/workflows", json=GOOD, headers=env.bearer())
    assert reply.status_code == 202, reply.text
    workflow_id = reply.json()["workflow_id"]
    assert reply.headers["location"] == reply.json()["status_url"] == f"/v1/workflows/{workflow_id}"
    msg = await sub.next_msg(timeout=5)
    assert msg.subject == f"aiop.workflow.submitted.v1.{workflow_id}"
    assert "traceparent" in (msg.headers or {})
    event = decode_event(msg.data, WorkflowSubmitted)
    assert (event.workflow_id, event.principal, event.spec.name) == (workflow_id, "dev", "build")
    assert await env.published() == 1


async def test_idempotency_key_gives_one_workflow(env: Env) -> None:
    headers = {**env.bearer(), "Idempotency-Key": "deploy-42"}
    first = await env.client.post("/v1/workflows", json=GOOD, headers=headers)
    second = await env.client.post("/v1/workflows", json=GOOD, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["workflow_id"] == second.json()["workflow_id"]
    assert await env.published() == 1  # the retry is a JetStream duplicate
    other = await env.client.post("/v1/workflows", json=GOOD, headers=env.bearer())
    assert other.json()["workflow_id"] != first.json()["workflow_id"]


async def stub_task_manager(env: Env, views: dict[str, WorkflowView]) -> Any:
    async def get(query: WorkflowQuery) -> WorkflowView:
        if query.workflow_id not in views:
            raise rpc.QueryFailed(404, "unknown workflow")
        return views[query.workflow_id]

    return await rpc.serve(env.nc, "task-manager-stub", [(GET_WORKFLOW, get)])


async def test_status_comes_from_task_manager(env: Env) -> None:
    view = WorkflowView(
        workflow_id="wf1", name="build", project="default", state="running", steps=[]
    )
    hidden = WorkflowView(workflow_id="wf2", name="x", project="secret", state="running", steps=[])
    service = await stub_task_manager(env, {"wf1": view, "wf2": hidden})
    reply = await env.client.get("/v1/workflows/wf1", headers=env.bearer())
    assert reply.status_code == 200, reply.text
    # No reporter runs here: the status still answers, with report null.
    assert (reply.json()["state"], reply.json()["report"]) == ("running", None)
    # Unknown, another project's, and not a workflow id at all.
    for path, status in (("nope", 404), ("wf2", 404), ("a.b", 400)):
        reply = await env.client.get(f"/v1/workflows/{path}", headers=env.bearer())
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
    await service.stop()


async def test_status_right_after_submit_is_submitted(env: Env) -> None:
    service = await stub_task_manager(env, {})
    posted = await env.client.post("/v1/workflows", json=GOOD, headers=env.bearer())
    reply = await env.client.get(posted.json()["status_url"], headers=env.bearer())
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["steps"]) == ("submitted", [])
    await service.stop()


async def test_task_manager_unreachable_is_503(env: Env) -> None:
    reply = await env.client.get("/v1/workflows/wf1", headers=env.bearer())
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"


async def test_report_without_reporter_is_503_and_unknown_path_is_404(env: Env) -> None:
    reply = await env.client.get("/v1/workflows/wf1/report", headers=env.bearer())
    assert reply.status_code == 503
    for method, path, status in (("GET", "/v2/x", 404), ("DELETE", "/healthz", 405)):
        reply = await env.client.request(method, path, headers=env.bearer())
        assert reply.status_code == status
        assert reply.json()["status"] == status
        assert reply.headers["content-type"] == "application/problem+json"


async def test_a_caller_issues_lists_and_revokes_its_own_keys(env: Env) -> None:
    issued = await env.client.post("/v1/keys", headers=env.bearer())
    assert issued.status_code == 201, issued.text
    key, key_id = issued.json()["api_key"], issued.json()["key_id"]
    token = await env.client.post("/v1/tokens", json={"api_key": key})
    assert token.status_code == 200
    assert token.json()["principal"] == "dev"
    listed = (await env.client.get("/v1/keys", headers=env.bearer())).json()["keys"]
    assert key_id in [k["key_id"] for k in listed]
    assert all("api_key" not in k and "hash" not in k for k in listed)
    revoked = await env.client.delete(f"/v1/keys/{key_id}", headers=env.bearer())
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await env.client.post("/v1/tokens", json={"api_key": key})
    assert refused.status_code == 401
    for bad, status in (("0123456789ab", 404), ("not-a-key-id", 400)):
        reply = await env.client.delete(f"/v1/keys/{bad}", headers=env.bearer())
        assert reply.status_code == status, reply.text


async def test_cancel_records_one_request_and_is_a_no_op_once_it_ended(env: Env) -> None:
    def view(workflow_id: str, state: str, project: str = "default") -> WorkflowView:
        return WorkflowView(workflow_id=workflow_id, name="w", project=project, state=state,
                            steps=[])  # fmt: skip

    views = {"run": view("run", "running"), "done": view("done", "succeeded"),
             "hidden": view("hidden", "running", project="secret")}  # fmt: skip
    service = await stub_task_manager(env, views)
    kv = await env.nc.jetstream().key_value(KV_CANCELS)

    first = await env.client.post("/v1/workflows/run/cancel", headers=env.bearer())
    assert first.status_code == 202, first.text
    assert first.json()["detail"].startswith("cancel requested")
    entry = await kv.get("run")
    assert decode_cancel(entry.value or b"").principal == "dev"
    again = await env.client.post("/v1/workflows/run/cancel", headers=env.bearer())
    assert again.status_code == 202
    assert again.json()["detail"].startswith("cancel already requested")
    assert (await kv.get("run")).revision == entry.revision  # the first request stands

    ended = await env.client.post("/v1/workflows/done/cancel", headers=env.bearer())
    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] == "succeeded"
    for path, status in (("nope", 404), ("hidden", 404), ("a.b", 400)):
        reply = await env.client.post(f"/v1/workflows/{path}/cancel", headers=env.bearer())
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
    assert sorted(await kv.keys()) == ["run"]
    await service.stop()
