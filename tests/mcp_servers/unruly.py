"""An MCP server over stdio whose tools misbehave, for the failure taxonomy's tests:
`crash` kills the server mid-call, `hang` never answers, `refuse` answers isError, `huge`
answers more than a worker takes, `echo` works (after a crash: the server was restarted)."""

from __future__ import annotations

import asyncio
import os

from mcp.server.mcpserver import MCPServer as FastMCP
from mcp.server.mcpserver.exceptions import ToolError

server = FastMCP("unruly")


@server.tool()
async def echo(text: str) -> str:
    """Say it back, with the server's process id."""
    return f"{text} from {os.getpid()}"


@server.tool()
async def crash() -> str:
    """Die in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.sleep(3600)
    return "late"


@server.tool()
async def refuse(why: str) -> str:
    """Say no."""
    raise ToolError(why)


@server.tool()
async def huge(size: int) -> str:
    """Answer `size` characters."""
    return "x" * size


if __name__ == "__main__":
    server.run(transport="stdio")
