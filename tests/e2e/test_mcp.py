"""AIOP's MCP server against the platform ``aiop up`` starts, through the MCP SDK's own
client: over streamable HTTP at the gateway's /mcp with a bearer token (a built-in
template run waited for with progress, the run and its logs read as resources, a token
of another project shown nothing), and over stdio from ``aiop mcp``, started the way a
desktop agent starts it."""

import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl

from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

TOOLS = {"list_templates", "run_template", "submit_workflow", "get_workflow",
         "list_workflows", "get_logs", "cancel_workflow", "rerun_workflow"}  # fmt: skip
RUN_TIMEOUT = timedelta(seconds=300)


@contextlib.asynccontextmanager
async def over_http(platform: Platform, token: str) -> AsyncIterator[ClientSession]:
    http = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, read=300)
    )
    async with (
        http,
        streamable_http_client(f"{platform.gateway_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def over_stdio(
    platform: Platform, errors: Path, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """``aiop mcp`` in the platform's directory, with no AIOP_ variable unless ``env``."""
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "aiop.cli", "mcp"], cwd=platform.root, env=env
    )
    with errors.open("w") as errlog:
        async with (
            stdio_client(command, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def text(result: Any) -> str:
    return str(result.contents[0].text)


def submitted(platform: Platform) -> str:
    """A quick run of project default, waited for until it ended."""
    (platform.root / "mcp-e2e.yaml").write_text(
        "name: mcp-e2e\nsteps:\n  - {name: say, run: [echo, from mcp e2e], cache: false}\n"
    )
    view = aiop(platform, "submit", "mcp-e2e.yaml", "--wait")
    assert view["state"] == "succeeded", view
    return str(view["workflow_id"])


def aiop(platform: Platform, *args: str) -> Any:
    done = platform.aiop(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def test_a_template_run_over_http_reports_progress_and_reads_as_resources(
    platform: Platform,
) -> None:
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total, message))

    # A minimum no other run used: transform runs rather than coming from the step cache
    # (validate, which does not read it, may come from there after another test's run).
    minimum = round(0.001 + uuid.uuid4().int % 1000 / 1e6, 6)
    arguments = {"ref": "data-processing", "parameters": {"min_value": minimum}, "wait": True,
                 "timeout": 240}  # fmt: skip
    async with over_http(platform, platform.token) as session:
        tools = (await session.list_tools()).tools
        result = await session.call_tool(
            "run_template", arguments, read_timeout_seconds=RUN_TIMEOUT, progress_callback=progress
        )
        assert result.structuredContent, result.content
        workflow_id = result.structuredContent["workflow_id"]
        shown = await session.read_resource(AnyUrl(f"aiop://workflows/{workflow_id}"))
        logs = await session.read_resource(AnyUrl(f"aiop://workflows/{workflow_id}/logs"))
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert tool.inputSchema["type"] == "object", tool.name
        assert tool.inputSchema["properties"], tool.name
    assert result.structuredContent["state"] == "succeeded", result.structuredContent
    assert result.structuredContent["parameters"]["min_value"] == minimum
    assert result.structuredContent["origin"] == {"kind": "mcp"}  # what started it
    assert heard, "no progress notification"
    assert heard[-1] == (3, 3, "succeeded: 3 of 3 steps done")
    done = [progress for progress, _, _ in heard]
    assert done == sorted(done)
    assert json.loads(text(shown))["state"] == "succeeded"
    assert "transform | transform: " in text(logs)
    assert text(logs) == platform.aiop("logs", workflow_id).stdout  # as `aiop logs` shows them


async def test_a_token_of_another_project_is_shown_nothing_of_this_one(
    platform: Platform,
) -> None:
    project = f"mcp-{uuid.uuid4().hex[:6]}"
    aiop(platform, "projects", "create", project)
    limited = aiop(platform, "token", "--project", project)
    assert limited["projects"] == [project]
    workflow_id = submitted(platform)  # in project default
    async with over_http(platform, limited["token"]) as session:
        for tool, arguments in (
            ("get_workflow", {"workflow_id": workflow_id}),
            ("get_logs", {"workflow_id": workflow_id}),
            ("rerun_workflow", {"workflow_id": workflow_id, "from": "say"}),
            ("list_templates", {}),  # project default's
        ):
            refused = await session.call_tool(tool, arguments)
            assert refused.isError, (tool, refused.content)
            assert refused.structuredContent
            assert refused.structuredContent["status"] == 404, refused.structuredContent
        own = await session.call_tool("list_templates", {"project": project})
        runs = await session.call_tool("list_workflows", {"limit": 500})
        with pytest.raises(McpError):
            await session.read_resource(AnyUrl(f"aiop://workflows/{workflow_id}"))
    assert own.structuredContent
    assert "data-processing" in {t["name"] for t in own.structuredContent["templates"]}
    assert runs.structuredContent is not None
    assert runs.structuredContent["workflows"] == []
    async with httpx.AsyncClient(timeout=30) as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            answer = await anonymous.post(f"{platform.gateway_url}/mcp", json={}, headers=headers)
            assert answer.status_code == 401


async def test_aiop_mcp_over_stdio_as_a_desktop_agent_starts_it(
    platform: Platform, tmp_path: Path
) -> None:
    workflow_id = submitted(platform)
    # Found the way every command finds it: the platform this directory runs.
    async with over_stdio(platform, tmp_path / "stdio.err") as session:
        tools = (await session.list_tools()).tools
        got = await session.call_tool("get_workflow", {"workflow_id": workflow_id})
        page = await session.call_tool("list_workflows", {"limit": 500})
    assert {tool.name for tool in tools} == TOOLS, (tmp_path / "stdio.err").read_text()
    assert got.structuredContent, got.content
    assert got.structuredContent["workflow_id"] == workflow_id
    assert got.structuredContent["steps"][0]["name"] == "say"
    assert page.structuredContent
    assert workflow_id in {run["workflow_id"] for run in page.structuredContent["workflows"]}
    # Or AIOP_URL and AIOP_TOKEN: here a token of another project, shown nothing of this one.
    project = f"mcp-{uuid.uuid4().hex[:6]}"
    aiop(platform, "projects", "create", project)
    limited = aiop(platform, "token", "--project", project)["token"]
    env = {"AIOP_URL": platform.gateway_url, "AIOP_TOKEN": limited}
    async with over_stdio(platform, tmp_path / "limited.err", env) as session:
        hidden = await session.call_tool("get_workflow", {"workflow_id": workflow_id})
    assert hidden.isError
    assert hidden.structuredContent
    assert hidden.structuredContent["status"] == 404
