"""``aiop mcp``: AIOP's MCP server over stdio, for a desktop agent to start. It calls the
gateway every command calls (the platform ``aiop up`` runs here, or AIOP_URL and
AIOP_TOKEN); the SDK is loaded by this command only, not by every other one."""

import asyncio

from aiop.cli.client import Credentials, credentials
from aiop.cli.common import fail
from aiop.cli.stack import NoPlatform


def mcp() -> None:
    """Serve AIOP's tools and resources to an MCP client over stdin and stdout."""
    try:
        found = credentials()
    except NoPlatform as exc:
        fail(str(exc), 3)
    asyncio.run(_serve(found))


async def _serve(found: Credentials) -> None:
    from aiop.client import AsyncClient
    from aiop.mcp.stdio import serve_stdio

    async with AsyncClient(found.url, api_key=found.api_key, token=found.token) as client:
        await serve_stdio(client)
