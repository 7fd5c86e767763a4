"""/mcp through the MCP SDK's own client, against the gateway's app in-process (auth
running, task-manager a stub): a bearer token or a 401; the eight tools with the API's
own schemas; a template run waited for, its progress reported step by step; a run, its
logs and a template as resources; another project's run as unknown as over HTTP. And the
same server without HTTP, as ``aiop mcp`` runs it over stdio."""

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session
from nats.aio.msg import Msg
from pydantic import AnyUrl

from aiop.client import AsyncClient
from aiop.contracts.endpoints import GET_WORKFLOW, LIST_WORKFLOWS
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import Origin, StepOutputAppended, WorkflowSubmitted
from aiop.contracts.queries import (
    StepView,
    WorkflowListItem,
    WorkflowListQuery,
    WorkflowPage,
    WorkflowQuery,
    WorkflowView,
)
from aiop.mcp import AiopMcp
from aiop.servicekit import rpc

from .conftest import Env, running

pytestmark = pytest.mark.integration

TOOLS = {"list_templates", "run_template", "submit_workflow", "get_workflow",
         "list_workflows", "get_logs", "cancel_workflow", "rerun_workflow"}  # fmt: skip
STEPS = ("validate", "transform", "report")  # data-processing's


@contextlib.asynccontextmanager
async def session_of(env: Env, token: str | None = None) -> AsyncIterator[ClientSession]:
    """An MCP session over streamable HTTP at /mcp, with a bearer token (the dev one)."""
    assert env.app is not None
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), headers=env.bearer(token), timeout=30
    )
    async with (
        http,
        streamable_http_client("http://gateway/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def stage(workflow_id: str, done: int) -> WorkflowView:
    """data-processing with ``done`` steps succeeded and the next one running."""
    states = (["succeeded"] * done + ["running"] + ["pending"] * len(STEPS))[: len(STEPS)]
    steps = [StepView(name=n, state=s) for n, s in zip(STEPS, states, strict=True)]  # type: ignore[arg-type]
    state = "succeeded" if done == len(STEPS) else "running"
    return WorkflowView(workflow_id=workflow_id, name="data-processing", project="default",
                        state=state, steps=steps)  # fmt: skip


@contextlib.asynccontextmanager
async def task_manager(env: Env, views: dict[str, WorkflowView]) -> AsyncIterator[None]:
    """task-manager as a stub: ``views`` as they are; a run submitted meanwhile one stage
    further each time it is asked about (unknown until the bus carried it)."""
    submitted: set[str] = set()
    asked: Counter[str] = Counter()

    async def heard(msg: Msg) -> None:
        submitted.add(msg.subject.rsplit(".", 1)[-1])

    async def get(query: WorkflowQuery) -> WorkflowView:
        if query.workflow_id in views:
            return views[query.workflow_id]
        if query.workflow_id not in submitted:
            raise rpc.QueryFailed(404, "unknown workflow")
        asked[query.workflow_id] += 1
        return stage(query.workflow_id, min(asked[query.workflow_id] - 1, len(STEPS)))

    async def listed(query: WorkflowListQuery) -> WorkflowPage:
        items = [WorkflowListItem(workflow_id=v.workflow_id, name=v.name, project=v.project,
                                  state=v.state, created_at=v.created_at, origin=Origin(kind="api"))
                 for v in views.values() if v.project in query.visible and v.created_at]  # fmt: skip
        return WorkflowPage(workflows=items)

    subscription = await env.nc.subscribe(WorkflowSubmitted.filter(), cb=heard)
    stub = await rpc.serve(env.nc, "task-manager-stub", [(GET_WORKFLOW, get),
                                                         (LIST_WORKFLOWS, listed)])  # fmt: skip
    try:
        yield
    finally:
        await stub.stop()
        await subscription.unsubscribe()


async def test_mcp_takes_a_bearer_token_and_posts_only(env: Env) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream"}
    for given in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        refused = await env.client.post("/mcp", json=initialize, headers=accept | given)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith('Bearer realm="aiop"')
        assert refused.json()["instance"] == "/mcp"
    taken = await env.client.post("/mcp", json=initialize, headers=accept | env.bearer())
    assert taken.status_code == 200, taken.text
    assert '"serverInfo":{"name":"aiop"' in taken.text
    for method in ("GET", "DELETE"):
        other = await env.client.request(method, "/mcp", headers=accept | env.bearer())
        assert (other.status_code, other.headers["allow"]) == (405, "POST")


async def test_the_tools_take_what_the_api_takes(env: Env) -> None:
    async with session_of(env) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        templates = (await session.list_resource_templates()).resourceTemplates
    assert set(tools) == TOOLS
    components = (await env.client.get("/openapi.json")).json()["components"]["schemas"]
    submit = tools["submit_workflow"].inputSchema
    assert submit["required"] == ["workflow"]
    for name in ("WorkflowSpec", "StepSpec", "RetryPolicy"):  # the API's, references and all
        api = json.dumps(components[name]).replace("#/components/schemas/", "#/$defs/")
        assert submit["$defs"][name] == json.loads(api)
    run = tools["run_template"].inputSchema
    assert {"ref", "parameters", "labels", "project", "wait", "timeout"} <= set(run["properties"])
    assert run["additionalProperties"] is False
    filters = tools["list_workflows"].inputSchema["properties"]
    assert "timed_out" in filters["state"]["items"]["enum"]
    assert filters["limit"]["maximum"] == 500
    assert "follow" not in tools["get_logs"].inputSchema["properties"]  # a stream, not a tool's
    assert tools["get_workflow"].annotations
    assert tools["get_workflow"].annotations.readOnlyHint
    assert {t.uriTemplate for t in templates} == {
        "aiop://workflows/{workflow_id}", "aiop://workflows/{workflow_id}/logs",
        "aiop://templates/{name}",
    }  # fmt: skip


async def test_a_template_run_waited_for_reports_each_step(env: Env) -> None:
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total, message))

    arguments = {"ref": "data-processing", "parameters": {"group_by": "product"}, "wait": True}
    async with task_manager(env, {}), session_of(env) as session:
        result = await session.call_tool("run_template", arguments, progress_callback=progress)
        refused = await session.call_tool("run_template", {"ref": "data-processing",
                                                           "parameters": {"group_by": "colour"}})  # fmt: skip
        unknown = await session.call_tool("run_template", {"ref": "x", "nonsense": 1})
    assert not result.isError, result.content
    assert result.structuredContent
    assert result.structuredContent["state"] == "succeeded"
    assert result.structuredContent["name"] == "data-processing"
    links = [c for c in result.content if c.type == "resource_link"]
    assert [str(link.uri) for link in links] == [
        f"aiop://workflows/{result.structuredContent['workflow_id']}"
    ]
    # Each stage once, in order; before task-manager knew the run, it was just submitted.
    assert [(done, total) for done, total, _ in heard if total] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert heard[0][2] is not None
    assert heard[0][2].startswith(("submitted", "running"))
    assert heard[-1][2] == "succeeded: 3 of 3 steps done"
    assert ("running: 1 of 3 steps done, transform running") in [m for _, _, m in heard]
    # The API's own refusal, as a tool error with its problem details.
    assert refused.isError
    assert refused.structuredContent
    assert refused.structuredContent["status"] == 422
    assert refused.structuredContent["errors"][0]["pointer"] == "/parameters/group_by"
    assert unknown.isError
    assert "nonsense" in unknown.content[0].text


async def test_a_run_its_logs_and_a_template_are_resources(env: Env) -> None:
    run = msgspec.structs.replace(stage("wf-mcp", len(STEPS)), created_at=datetime.now(UTC))
    for seq, (step, text) in enumerate((("validate", "300 rows\n"), ("report", "3 groups\n"))):
        event = StepOutputAppended(workflow_id="wf-mcp", step=step, stream="stdout", seq=seq,
                                   text=text)  # fmt: skip
        envelope = encode_event(event, "test")
        await env.nc.jetstream().publish(envelope.subject, envelope.body, headers=envelope.headers)
    async with task_manager(env, {"wf-mcp": run}), session_of(env) as session:
        shown = await session.read_resource(AnyUrl("aiop://workflows/wf-mcp"))
        logs = await session.read_resource(AnyUrl("aiop://workflows/wf-mcp/logs"))
        template = await session.read_resource(AnyUrl("aiop://templates/ml-training"))
        pinned = await session.read_resource(
            AnyUrl("aiop://templates/ml-training@1.0.0?project=default")
        )
        listed = (await session.list_resources()).resources
        with pytest.raises(McpError) as missing:
            await session.read_resource(AnyUrl("aiop://workflows/wf-none"))
    assert json.loads(shown.contents[0].text)["state"] == "succeeded"  # type: ignore[union-attr]
    assert shown.contents[0].mimeType == "application/json"
    assert logs.contents[0].text == "validate | 300 rows\nreport | 3 groups\n"  # type: ignore[union-attr]
    assert json.loads(template.contents[0].text)["name"] == "ml-training"  # type: ignore[union-attr]
    assert json.loads(pinned.contents[0].text)["version"] == "1.0.0"  # type: ignore[union-attr]
    assert [str(r.uri) for r in listed] == ["aiop://workflows/wf-mcp"]
    assert missing.value.error.code == -32002


async def test_another_projects_run_is_as_unknown_as_over_http(env: Env) -> None:
    hidden = WorkflowView(workflow_id="wf-other", name="x", project="other", state="running",
                          steps=[])  # fmt: skip
    async with task_manager(env, {"wf-other": hidden}), session_of(env) as session:
        for tool, arguments in (
            ("get_workflow", {"workflow_id": "wf-other"}),
            ("get_logs", {"workflow_id": "wf-other"}),
            ("cancel_workflow", {"workflow_id": "wf-other"}),
            ("list_templates", {"project": "other"}),
            ("list_workflows", {"project": "other"}),
        ):
            answer = await session.call_tool(tool, arguments)
            assert answer.isError, (tool, answer.content)
            assert answer.structuredContent
            assert answer.structuredContent["status"] == 404
        for uri in ("aiop://workflows/wf-other/logs", "aiop://templates/ml-training?project=other"):
            with pytest.raises(McpError):
                await session.read_resource(AnyUrl(uri))
        over_http = await env.client.get("/v1/workflows/wf-other", headers=env.bearer())
    assert over_http.status_code == 404


async def test_the_server_without_http_as_stdio_runs_it(env: Env) -> None:
    """``aiop mcp`` gives the server one client for every request (stdio has no request)."""
    assert env.app is not None
    asked: list[Any] = []

    @contextlib.asynccontextmanager
    async def connect(request: Any) -> AsyncIterator[AsyncClient]:
        asked.append(request)
        transport = httpx.ASGITransport(app=env.app)
        async with AsyncClient("http://gateway", token=env.token, transport=transport) as api:
            yield api

    async with (
        task_manager(env, {"wf-1": stage("wf-1", 1)}),
        create_connected_server_and_client_session(AiopMcp(connect).server) as session,
    ):
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        got = await session.call_tool("get_workflow", {"workflow_id": "wf-1"})
    assert got.structuredContent
    assert got.structuredContent["steps"][1]["state"] == "running"
    assert asked
    assert set(asked) == {None}


async def test_the_tools_calls_count_against_the_callers_rate_limit(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        running(nats_url, tmp_path, rate_limit_per_principal="6/minute") as env,
        task_manager(env, {"wf-1": stage("wf-1", 0)}),
        session_of(env) as session,
    ):
        answers = [
            await session.call_tool("get_workflow", {"workflow_id": "wf-1"}) for _ in range(2)
        ]
    # /mcp and the API both count: 2 requests to initialize, then 2 per call here.
    assert not answers[0].isError
    assert answers[1].isError
    assert answers[1].structuredContent
    assert answers[1].structuredContent["type"] == "urn:aiop:problem:rate-limited"
    assert answers[1].structuredContent["instance"] == "/v1/workflows/wf-1"
