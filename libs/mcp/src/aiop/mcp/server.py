"""AIOP's MCP server: the tools and the resources over the gateway's API, through
``aiop.client.AsyncClient``. Every call carries the caller's own token, so the API
decides what the caller may see and do: scopes, project isolation and rate limits are
its own, and a run of another project is as unknown here as there (a 404)."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from importlib.metadata import version
from typing import Any

import httpx
import jsonschema
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl

from aiop.client import ApiError, AsyncClient, NotFound
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.mcp import resources
from aiop.mcp.runs import Progress, Report, until_ended
from aiop.mcp.schemas import NotInDocument
from aiop.mcp.tools import DEFAULT_WAIT_S, Offered, offered

# The client for a request: given what the transport knows of it (the HTTP request
# over streamable HTTP, None over stdio), a client that calls the API as its caller.
Connect = Callable[[Any], AbstractAsyncContextManager[AsyncClient]]
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
INSTRUCTIONS = (
    "AIOP runs workflows: DAGs of steps, each with its own state, output and result. Find"
    " what can run with list_templates and start it with run_template (or submit_workflow for a"
    " workflow of your own); with wait, progress is reported until the run ends. Look"
    " at runs with get_workflow, list_workflows and get_logs, or read"
    " aiop://workflows/{workflow_id} and aiop://workflows/{workflow_id}/logs."
)


class AiopMcp:
    def __init__(self, connect: Connect) -> None:
        self.connect = connect
        self.server: Server[Any, Any] = Server(
            "aiop", version=version("aiop-mcp"), instructions=INSTRUCTIONS
        )
        # Made from the gateway's OpenAPI document once, on the first request.
        self._tools: dict[str, Offered] | None = None
        # Registered as the SDK's decorators do, with handlers typed end to end.
        handlers = self.server.request_handlers
        handlers[types.ListToolsRequest] = self._list_tools
        handlers[types.CallToolRequest] = self._call_tool
        handlers[types.ListResourcesRequest] = self._list_resources
        handlers[types.ListResourceTemplatesRequest] = self._list_resource_templates
        handlers[types.ReadResourceRequest] = self._read_resource

    async def tools(self, client: AsyncClient) -> dict[str, Offered]:
        if self._tools is None:
            self._tools = offered(await client.request("GET", "/openapi.json"))
        return self._tools

    # -- tools --------------------------------------------------------------------------

    async def _list_tools(self, _: types.ListToolsRequest | None) -> types.ServerResult:
        async with self._client() as client, _as_mcp_errors():
            tools = await self.tools(client)
        return types.ServerResult(types.ListToolsResult(tools=[t.tool for t in tools.values()]))

    async def _call_tool(self, request: types.CallToolRequest) -> types.ServerResult:
        name, arguments = request.params.name, request.params.arguments or {}
        try:
            async with self._client() as client:
                tool = (await self.tools(client)).get(name)
                if tool is None:
                    return _failed(f"AIOP has no tool {name!r}")
                wrong = jsonschema.Draft202012Validator(tool.input.schema).iter_errors(arguments)
                if found := sorted(f"{'/'.join(map(str, e.path))}: {e.message}" for e in wrong):
                    return _failed("the arguments are refused:\n" + "\n".join(found))
                return types.ServerResult(await self._run(client, tool, arguments))
        except ApiError as exc:
            return _failed(str(exc), exc.problem)
        except httpx.TransportError as exc:
            return _failed(f"cannot reach AIOP's gateway: {exc!r}")
        except NotInDocument as exc:
            return _failed(f"{exc}: it is older than this server")

    async def _run(
        self, client: AsyncClient, tool: Offered, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        call = tool.input.request(arguments)
        headers = dict(call.headers)
        if tool.spec.starts_run:
            # Its own key unless given: sent again on a retry, it starts the run once.
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
            headers["AIOP-Origin"] = "mcp"  # recorded as what started the run
        method = tool.input.operation.method
        answer = await client.request(
            method, call.path, params=call.params, json=call.json, headers=headers,
            idempotent=method == "GET" or tool.spec.idempotent or tool.spec.starts_run,
        )  # fmt: skip
        if not tool.spec.starts_run:
            return _result(answer)
        workflow_id = str(answer["workflow_id"])
        if not arguments.get("wait"):
            return _result(answer, workflow_id)
        timeout = float(arguments.get("timeout", DEFAULT_WAIT_S))
        view = await until_ended(client, workflow_id, timeout, self._reporter())
        if view["state"] in TERMINAL_WORKFLOW_STATES:
            return _result(view, workflow_id)
        note = f"still {view['state']} after {timeout:g} s; it goes on: ask get_workflow later"
        return _result(view, workflow_id, note)

    def _reporter(self) -> Report:
        """Progress notifications for the request, if its caller asked for them."""
        context = self.server.request_context
        token = context.meta.progressToken if context.meta is not None else None

        async def report(progress: Progress) -> None:
            if token is not None:
                await context.session.send_progress_notification(
                    token, progress.done, progress.total or None, progress.message,
                    related_request_id=str(context.request_id),  # its own stream over HTTP
                )  # fmt: skip

        return report

    # -- resources ----------------------------------------------------------------------

    async def _list_resources(self, _: types.ListResourcesRequest) -> types.ServerResult:
        async with self._client() as client, _as_mcp_errors():
            runs = await resources.recent_runs(client)
        return types.ServerResult(types.ListResourcesResult(resources=runs))

    async def _list_resource_templates(self, _: object) -> types.ServerResult:
        templates = types.ListResourceTemplatesResult(resourceTemplates=resources.TEMPLATES)
        return types.ServerResult(templates)

    async def _read_resource(self, request: types.ReadResourceRequest) -> types.ServerResult:
        uri = request.params.uri
        async with self._client() as client, _as_mcp_errors():
            try:
                found = await resources.read(client, str(uri))
            except (resources.UnknownResource, NotFound) as exc:
                raise McpError(types.ErrorData(code=RESOURCE_NOT_FOUND, message=str(exc))) from exc
        contents = types.TextResourceContents(uri=uri, mimeType=found.mime_type, text=found.text)
        return types.ServerResult(types.ReadResourceResult(contents=[contents]))

    def _client(self) -> AbstractAsyncContextManager[AsyncClient]:
        return self.connect(self.server.request_context.request)


@contextlib.asynccontextmanager
async def _as_mcp_errors() -> AsyncIterator[None]:
    """The API's refusals and an unreachable gateway as MCP errors, for what is not a tool
    (a tool's failure is its result)."""
    try:
        yield
    except ApiError as exc:
        code = types.INVALID_PARAMS if exc.status < 500 else types.INTERNAL_ERROR
        raise McpError(types.ErrorData(code=code, message=str(exc))) from exc
    except httpx.TransportError as exc:
        message = f"cannot reach AIOP's gateway: {exc!r}"
        raise McpError(types.ErrorData(code=types.INTERNAL_ERROR, message=message)) from exc
    except NotInDocument as exc:
        message = f"{exc}: it is older than this server"
        raise McpError(types.ErrorData(code=types.INTERNAL_ERROR, message=message)) from exc


def _result(answer: Any, workflow_id: str | None = None, note: str = "") -> types.CallToolResult:
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=json.dumps(answer))]
    if note:
        content.append(types.TextContent(type="text", text=note))
    if workflow_id is not None:
        link = types.ResourceLink(
            type="resource_link", name=f"workflow {workflow_id}", mimeType=resources.JSON,
            uri=AnyUrl(f"aiop://workflows/{workflow_id}"),
        )  # fmt: skip
        content.append(link)
    structured = answer if isinstance(answer, dict) else {"result": answer}
    return types.CallToolResult(content=content, structuredContent=structured)


def _failed(message: str, problem: dict[str, Any] | None = None) -> types.ServerResult:
    text = types.TextContent(type="text", text=message)
    return types.ServerResult(
        types.CallToolResult(content=[text], structuredContent=problem, isError=True)
    )
