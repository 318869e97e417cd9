"""MCP servers' tools as activities: `list_mcp_tools` and `call_mcp_tool`.

Connections are the worker's, never the workflow's: one session per (agent, server), opened on
first use, kept open by a task of its own (the MCP SDK's transports must be entered and left in
one task), reopened after it breaks, closed when the worker shuts down (`MCPConnections.running`,
the plugin's run context). A stdio server is started once per worker and restarted when it dies.

Every failure comes out as one type of the taxonomy, with its retryability:
- the server answered `isError`: ToolRejected (the model reads why; not retried);
- the server crashed, the connection broke, or it could not be reached: ToolTransient (retried,
  on a fresh connection);
- no answer within the tool's timeout: Timeout (retried);
- a protocol error, or an answer outside MCP's schema: ToolContractViolation (the run parks);
  invalid parameters (JSON-RPC -32602): ToolInputInvalid (the model reads why);
- a result over the worker's limit: PayloadTooLarge (run_tool's check).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from jsonschema import Draft202012Validator
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_agents._catalog import Catalog
from durable_agents._mcp import IDEMPOTENCY_META, MCPServer, Stdio, StreamableHTTP
from durable_agents._vocab import failures as f
from durable_agents._vocab.names import CALL_MCP_TOOL, LIST_MCP_TOOLS
from durable_agents._vocab.schemas import MCPListRequest, MCPTool, MCPToolList, ToolRequest
from durable_agents._vocab.schemas import ToolResult as Result
from durable_agents.activities.heartbeat import heartbeating
from durable_agents.activities.identity import TokenBroker
from durable_agents.activities.tools import audited, check_scopes, handed_back
from durable_agents.errors import MCPConfigError

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult, RequestParamsMeta, Tool

# The MCP SDK (and its HTTP client) is imported on a worker's first MCP call, not at start-up:
# with what it pulls in (starlette, uvicorn, rich) it was most of the 40 MB and 1.3 s that the
# libraries now imported on first use cost every worker's start, and most agents use no MCP server.

# httpx2 logs every request's URL at INFO: a URL from a secret (a key in its query) stays out.
logging.getLogger("httpx2").setLevel(logging.WARNING)
logging.getLogger("httpcore2").setLevel(logging.WARNING)

# JSON-RPC error codes (the MCP SDK's): the connection closed, a request timed out, bad params.
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL = -32603


@functools.cache
def _broken() -> tuple[type[BaseException], ...]:
    """Errors that mean the connection is gone, whatever the transport (or never came)."""
    import anyio
    import httpx2

    return (
        anyio.ClosedResourceError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
        httpx2.TransportError,
        OSError,
        EOFError,
    )


class _Connection:
    """One open session with one server, held by a task of its own."""

    def __init__(self, server: MCPServer, headers: dict[str, str] | None = None) -> None:
        self.server = server
        self._headers = headers or {}  # beyond the transport's own (a call's token)
        self._session: ClientSession | None = None
        self.generation = 0  # which session this is: a late error of an old one is ignored
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    async def session(self) -> ClientSession:
        async with self._lock:
            if self._session is None or self._task is None or self._task.done():
                await self._open()
            assert self._session is not None
            return self._session

    async def _open(self) -> None:
        await self.close()
        self._stop = stop = asyncio.Event()
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready, stop), name=f"mcp {self.server.name}")
        self._session = await ready
        self.generation += 1

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits, or logged
            if not ready.done():
                ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError):
                activity.logger.warning(
                    "MCP server %s: connection ended: %r", self.server.name, exc
                )
        finally:
            mine = ready.done() and not ready.cancelled() and ready.exception() is None
            if mine and self._session is ready.result():
                self._session = None  # only its own session, never a newer one

    def _transport(self, stack: AsyncExitStack) -> Any:
        import httpx2
        from mcp import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        transport = self.server.transport
        if isinstance(transport, Stdio):
            # The server sees only the variables the spec names (and the SDK's safe defaults).
            env = {name: os.environ[name] for name in transport.env if name in os.environ}
            params = StdioServerParameters(
                command=transport.command, args=list(transport.args), env=env, cwd=transport.cwd
            )
            errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115
            return stdio_client(params, errlog=errlog)
        url = transport.url if isinstance(transport.url, str) else transport.url.resolve()
        headers = {
            k: v if isinstance(v, str) else v.resolve() for k, v in transport.headers.items()
        } | self._headers
        seconds = transport.connect_timeout.total_seconds()
        http = httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(seconds, read=None), follow_redirects=True
        )
        stack.push_async_callback(http.aclose)
        return streamable_http_client(url, http_client=http)

    def broken(self, generation: int) -> None:
        """Drop the session the failed request used: the next call opens a new one (a stdio
        server is restarted). A session opened since is left alone."""
        if generation != self.generation:
            return
        self._stop.set()
        self._session = None

    async def close(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except (TimeoutError, Exception):  # noqa: BLE001 - closing what is broken anyway
                task.cancel()


class MCPConnections:
    """The worker's MCP sessions, by agent and server."""

    def __init__(self, catalog: Catalog) -> None:
        self._servers = {
            (spec.name, server.name): server
            for spec in catalog.agents.values()
            for server in spec.mcp_servers
        }
        self._open: dict[tuple[str, str], _Connection] = {}

    def server(self, agent: str, name: str) -> MCPServer:
        try:
            return self._servers[(agent, name)]
        except KeyError:
            raise ApplicationError(
                f"agent {agent!r} has no MCP server {name!r} on this worker",
                type=f.UNKNOWN_TOOL,
                non_retryable=True,
            ) from None

    def connection(self, agent: str, name: str) -> _Connection:
        key = (agent, name)
        if key not in self._open:
            self._open[key] = _Connection(self.server(agent, name))
        return self._open[key]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the worker's lifetime: close every session (stop every stdio server) after."""
        try:
            yield
        finally:
            await asyncio.gather(*(c.close() for c in self._open.values()))
            self._open.clear()


NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _unusable(exposed: str, schema: dict[str, Any]) -> str | None:
    """Why a listed tool cannot be offered to a model, if it cannot: a name providers refuse,
    an input schema that is not JSON Schema, or one that refers outside itself."""
    if not NAME.fullmatch(exposed):
        return "its name is not 1-64 letters, digits, - or _: rename it in the spec"
    try:
        Draft202012Validator.check_schema(schema)
        for pattern in _values(schema, "pattern"):
            re.compile(str(pattern))
    except Exception as exc:  # noqa: BLE001 - any way a schema is broken
        return f"its input schema is not valid JSON Schema: {str(exc).splitlines()[0][:200]}"
    remote = [r for r in _values(schema, "$ref") if not str(r).startswith("#")]
    if remote:
        return f"its input schema refers outside itself ({remote[0]!r})"
    return None


def _values(node: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _values(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _values(child, key)]
    return []


def side_effect_of(server: MCPServer, tool: Tool) -> str:
    """The spec's word, else the tool's annotations (MCP's defaults: not read-only)."""
    terms = server.terms(tool.name)
    if terms.side_effect or server.side_effect:
        return terms.side_effect or server.side_effect or ""
    hints = tool.annotations
    if hints is not None and hints.read_only_hint:
        return "read_only"
    if hints is not None and hints.destructive_hint is False:
        return "reversible"
    return "irreversible"  # destructiveHint true, or not said (MCP's default is destructive)


class MCPRunner:
    """The MCP activities over one catalog's agents."""

    def __init__(self, connections: MCPConnections) -> None:
        self._connections = connections
        self._tokens = TokenBroker()

    @activity.defn(name=LIST_MCP_TOOLS)
    async def list_mcp_tools(self, request: MCPListRequest) -> MCPToolList:
        """List one server's tools for a run, as the spec allows, renames and rates them."""
        server = self._connections.server(request.agent, request.server)
        conn = self._connections.connection(request.agent, request.server)
        listed: list[Tool] = []
        cursor: str | None = None
        while True:
            page = await heartbeating(
                _protocol(conn, server, "tools/list", _list_page(conn, cursor), server.timeout),
                f"MCP {server.name}: list tools",
            )
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        tools, left_out = [], []
        seen: dict[str, str] = {
            name: "a tool the agent already has (its own, or another server's)"
            for name in request.native
        }
        for tool in listed:
            if not server.offers(tool.name):
                left_out.append(tool.name)
                continue
            exposed = server.exposed(tool.name)
            unusable = _unusable(exposed, tool.input_schema)
            if unusable:
                activity.logger.warning(
                    "MCP server %s: left out %s: %s", server.name, tool.name, unusable
                )
                left_out.append(f"{tool.name} ({unusable})")
                continue
            if exposed in seen:
                raise ApplicationError(
                    f"MCP server {server.name}: tool {exposed!r} clashes with {seen[exposed]}; "
                    "rename it in the spec (MCPServer.rename) or deny it",
                    type=f.TOOL_CONTRACT_VIOLATION,
                    non_retryable=True,
                )
            seen[exposed] = f"a tool of MCP server {server.name}"
            terms = server.terms(tool.name)
            timeout = terms.timeout or server.timeout
            tools.append(
                MCPTool(
                    server=server.name,
                    name=tool.name,
                    exposed=exposed,
                    description=tool.description or tool.title or tool.name,
                    input_schema=tool.input_schema,
                    side_effect=side_effect_of(server, tool),  # type: ignore[arg-type]
                    scopes=list(server.scopes if terms.scopes is None else terms.scopes),
                    timeout_seconds=timeout.total_seconds(),
                    max_attempts=terms.max_attempts or server.max_attempts,
                )
            )
        return MCPToolList(server=server.name, tools=tools, left_out=left_out)

    @activity.defn(name=CALL_MCP_TOOL)
    async def call_mcp_tool(self, request: ToolRequest) -> Result:
        """Call one MCP tool with the run's idempotency key in `_meta`; audited like run_tool."""
        target = request.mcp
        if target is None:
            raise ApplicationError(
                "call_mcp_tool needs an MCP target", type=f.INVALID_REQUEST, non_retryable=True
            )
        return await audited(request, target.side_effect, self._call(request))

    async def _call(self, request: ToolRequest) -> Result:
        target = request.mcp
        assert target is not None
        check_scopes(request, target.scopes)
        server = self._connections.server(target.agent, target.server)
        if not server.offers(target.tool):
            raise ApplicationError(
                f"{server.name}.{target.tool} is not offered by this worker's spec of "
                f"{target.agent} (allow/deny)",
                type=f.TOOL_REJECTED,
                non_retryable=True,
            )
        own = None
        if server.audience and isinstance(server.transport, StreamableHTTP):
            # A token of this call's own, on a connection of its own: the pooled session's
            # headers are shared by every run (after the scope check: a call the run may not
            # make never obtains a token).
            token = await self._tokens.token(request, server.audience, tuple(target.scopes))
            own = _Connection(server, {"Authorization": f"Bearer {token}"})
        conn = own or self._connections.connection(target.agent, target.server)
        try:
            return await self._on(conn, request, server)
        finally:
            if own is not None:
                await own.close()

    async def _on(self, conn: _Connection, request: ToolRequest, server: MCPServer) -> Result:
        target = request.mcp
        assert target is not None
        limit = activity.info().start_to_close_timeout or server.timeout
        # Answer as a typed Timeout a little before Temporal's own timeout would strike.
        wait = max(1.0, limit.total_seconds() - 1.0)
        meta = {IDEMPOTENCY_META: request.idempotency_key}
        result = await heartbeating(
            _protocol(
                conn,
                server,
                f"tools/call {target.tool}",
                _call(conn, target.tool, request.arguments, wait, meta),
                timedelta(seconds=wait + 5),
            ),
            f"MCP {server.name}.{target.tool}",
        )
        text = _text(result)
        if result.is_error:
            raise ApplicationError(
                f"{server.name}.{target.tool} refused: {text[:2000] or 'no reason given'}",
                type=f.TOOL_REJECTED,
                non_retryable=True,
            )
        output: dict[str, Any]
        if isinstance(result.structured_content, dict):
            output = result.structured_content
        else:
            output = {"text": text}
        return await handed_back(request, Result(tool=request.tool, output=output))


async def _list_page(conn: _Connection, cursor: str | None) -> Any:
    from mcp.types import PaginatedRequestParams

    session = await conn.session()
    params = PaginatedRequestParams(cursor=cursor) if cursor else None
    return await session.list_tools(params=params)


async def _call(
    conn: _Connection, tool: str, arguments: dict[str, Any], wait: float, meta: dict[str, str]
) -> CallToolResult:
    session = await conn.session()
    return await session.call_tool(
        tool, arguments, read_timeout_seconds=wait, meta=cast("RequestParamsMeta", meta)
    )


async def _protocol(
    conn: _Connection, server: MCPServer, what: str, work: Any, limit: timedelta
) -> Any:
    """`work` (a request to the server), its failures as taxonomy types. A broken connection
    is dropped only if it is still the one this request used (not a fresh one since)."""
    from mcp.shared.exceptions import MCPError

    generation = conn.generation
    try:
        return await asyncio.wait_for(work, limit.total_seconds())
    except MCPError as exc:
        if exc.code == REQUEST_TIMEOUT:
            raise ApplicationError(
                f"MCP server {server.name} did not answer {what} in time: {exc.message}",
                type=f.TIMEOUT,
            ) from None
        if exc.code == CONNECTION_CLOSED or (
            # Over HTTP: a session the server forgot (it restarted), or an HTTP error (401 after
            # a credential rotated, 502/503): a new connection (headers read again) may cure it.
            not isinstance(server.transport, Stdio) and exc.code in (INVALID_REQUEST, INTERNAL)
        ):
            conn.broken(generation)
            raise _transient(server, what, exc.message) from None
        if exc.code == INVALID_PARAMS:
            raise ApplicationError(
                f"MCP server {server.name} refused the arguments of {what}: {exc.message}",
                type=f.TOOL_INPUT_INVALID,
                non_retryable=True,
            ) from None
        raise ApplicationError(
            f"MCP server {server.name} answered {what} with protocol error {exc.code}: "
            f"{exc.message}",
            type=f.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        ) from None
    except TimeoutError:
        conn.broken(generation)  # a transport that hangs is not trusted again
        raise ApplicationError(
            f"MCP server {server.name} did not answer {what} within {limit.total_seconds():g} s",
            type=f.TIMEOUT,
        ) from None
    except ValidationError as exc:
        raise ApplicationError(
            f"MCP server {server.name} answered {what} outside MCP's schema: "
            f"{str(exc).splitlines()[0]}",
            type=f.TOOL_CONTRACT_VIOLATION,
            non_retryable=True,
        ) from None
    except MCPConfigError as exc:
        raise ApplicationError(
            f"MCP server {server.name}: {exc}", type=f.INVALID_REQUEST, non_retryable=True
        ) from None
    except _broken() as exc:
        conn.broken(generation)
        raise _transient(server, what, f"{type(exc).__name__}: {exc}") from None
    except BaseExceptionGroup as group:
        conn.broken(generation)
        raise _transient(server, what, f"{type(group.exceptions[0]).__name__}") from None


def _transient(server: MCPServer, what: str, why: str) -> ApplicationError:
    where = (
        f"process {server.transport.command}"
        if isinstance(server.transport, Stdio)
        else "its endpoint"
    )
    return ApplicationError(
        f"MCP server {server.name} ({where}) broke off {what}: {why}; retrying on a new connection",
        type=f.TOOL_TRANSIENT,
    )


def _text(result: CallToolResult) -> str:
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, sort_keys=True)
    return "\n".join(parts)
