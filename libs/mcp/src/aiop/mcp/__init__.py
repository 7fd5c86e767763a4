"""AIOP's MCP server: runs, their logs and templates as MCP tools and resources, over
the gateway's API. ``AiopMcp`` is the server; ``http.StreamableHttp`` serves it over
streamable HTTP (the gateway's ``/mcp``), ``stdio.serve_stdio`` over stdio (``aiop mcp``).
"""

from aiop.mcp.server import AiopMcp, Connect

__all__ = ["AiopMcp", "Connect"]
