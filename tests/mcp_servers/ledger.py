"""A payments ledger served over MCP's streamable HTTP with the official SDK (FastMCP, named
`MCPServer` in mcp 2.x): what a company's own MCP server looks like to durable-agents' tests.

    python -m tests.mcp_servers.ledger PORT DB [VERSION]

`transfer` is destructive and honours the idempotency key the client sends in `_meta`: one
effect per key, however often it is called. Every call is recorded (`calls`), every effect once
(`effects`). `transfer` takes its time (LEDGER_DELAY seconds) so a test can kill the caller in
flight. VERSION 2 serves a changed tool list (a new tool, a changed description).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys

from mcp.server.mcpserver import Context
from mcp.server.mcpserver import MCPServer as FastMCP
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def serve(port: int, db: str, version: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("create table if not exists calls (key text, tool text, arguments text)")
    conn.execute(
        "create table if not exists effects (key text primary key, account text, amount text)"
    )
    server = FastMCP("ledger")
    delay = float(os.environ.get("LEDGER_DELAY", "0"))

    def key_of(ctx: Context) -> str:
        meta = ctx.request_context.meta or {}
        key = meta.get("idempotency_key") if hasattr(meta, "get") else None
        if not key:
            raise ToolError("no idempotency_key in _meta: refusing to move money")
        return str(key)

    about = "Look an account up: its owner and balance." if version == 1 else "Account details."

    @server.tool(description=about, annotations=ToolAnnotations(read_only_hint=True))
    async def lookup(account: str, ctx: Context) -> dict[str, str]:
        conn.execute("insert into calls values (?, 'lookup', ?)", ("", account))
        if account.startswith("X"):
            raise ToolError(f"no account {account}")
        return {"account": account, "owner": "ACME", "balance": "1000.00"}

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
    async def transfer(account: str, amount: str, ctx: Context) -> dict[str, str]:
        """Move money out of an account. Irreversible."""
        key = key_of(ctx)
        conn.execute("insert into calls values (?, 'transfer', ?)", (key, f"{account} {amount}"))
        if conn.execute("select 1 from effects where key = ?", (key,)).fetchone() is None:
            await asyncio.sleep(delay)
            conn.execute("insert or ignore into effects values (?, ?, ?)", (key, account, amount))
        return {"status": "sent", "account": account, "amount": amount, "key": key}

    if version >= 2:

        @server.tool(annotations=ToolAnnotations(read_only_hint=True))
        async def statement(account: str) -> str:
            """The account's statement (new in version 2)."""
            return f"statement of {account}: nothing"

    # LEDGER_STATEFUL=1: sessions the server remembers, and forgets when it restarts.
    server.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=port,
        stateless_http=os.environ.get("LEDGER_STATEFUL") != "1",
        json_response=True,
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
