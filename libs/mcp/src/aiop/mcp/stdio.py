"""MCP over stdio, for a desktop agent that starts the server itself (``aiop mcp``): one
client, given by the caller, makes every call."""

import contextlib
from collections.abc import AsyncIterator

from mcp.server.stdio import stdio_server

from aiop.client import AsyncClient
from aiop.mcp.server import AiopMcp


async def serve_stdio(client: AsyncClient) -> None:
    """Answer MCP requests on stdin and stdout until stdin ends."""

    @contextlib.asynccontextmanager
    async def shared(_: object) -> AsyncIterator[AsyncClient]:
        yield client  # the caller's to close

    server = AiopMcp(shared).server
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
