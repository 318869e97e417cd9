"""MCP servers an agent uses: where they are, which of their tools it sees, and under what terms.

    MCP_TIME = MCPServer(
        name="time",
        transport=Stdio(command="mcp-server-time", args=("--local-timezone", "UTC")),
    )
    TICKETS = MCPServer(
        name="tickets",
        transport=StreamableHTTP(
            url="https://tickets.example.com/mcp",
            headers={"Authorization": FromEnv("TICKETS_TOKEN", template="Bearer {}")},
        ),
        deny=("delete_everything",),
        rename={"create": "create_ticket"},
        tools={"create": MCPToolTerms(scopes=("tickets:write",))},
    )
    AgentSpec(..., mcp_servers=(MCP_TIME, TICKETS))

The worker lists each server's tools once per run (an activity, so the list is in the run's
history and a server that changes later cannot break a run in flight), gives every tool a
contract (input schema from the server; side effect from `tools`, else `side_effect`, else the
tool's annotations: `readOnlyHint` -> read_only, `destructiveHint: false` -> reversible,
otherwise irreversible, MCP's default) and calls it as an activity with the idempotency key
`<workflow id>/<tool call id>` in the request's `_meta` as `idempotency_key`. Secrets (header
values, environment) are read by the worker when it connects and never enter history.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from durable_agents._spec import SideEffect
from durable_agents.errors import MCPConfigError

# The key of `_meta` in every tools/call request that carries the idempotency key.
IDEMPOTENCY_META = "idempotency_key"


@dataclass(frozen=True)
class FromEnv:
    """A value (a header, a URL) read from the worker's environment when it connects."""

    name: str
    """The environment variable."""
    template: str = "{}"
    """How the value is written, e.g. `Bearer {}`, or `{}/mcp` for a URL."""
    default: str | None = None
    """The value when the variable is not set; None: it must be set."""

    def resolve(self) -> str:
        value = os.environ.get(self.name) or self.default
        if not value:
            raise MCPConfigError(f"environment variable {self.name} is not set on this worker")
        return self.template.format(value)


@dataclass(frozen=True)
class FromFile:
    """A header value read from a secret file (e.g. a mounted Kubernetes secret)."""

    path: str
    """The file; its content, stripped, is the value."""
    template: str = "{}"
    """How the value is written into the header, e.g. `Bearer {}`."""

    def resolve(self) -> str:
        try:
            return self.template.format(Path(self.path).read_text().strip())
        except OSError as exc:
            raise MCPConfigError(f"cannot read secret file {self.path}: {exc.strerror}") from None


HeaderValue = str | FromEnv | FromFile


@dataclass(frozen=True)
class Stdio:
    """A server the worker starts as a subprocess and speaks to over stdin/stdout. It is
    started once per worker, restarted when it dies, stopped when the worker shuts down."""

    command: str
    """The program (a path, or a name on the worker's PATH)."""
    args: tuple[str, ...] = ()
    """Its arguments."""
    env: tuple[str, ...] = ()
    """The worker's environment variables it may see (besides HOME, PATH, USER, …)."""
    cwd: str | None = None
    """Its working directory."""


@dataclass(frozen=True)
class StreamableHTTP:
    """A server reached over MCP's streamable HTTP transport; one session per worker."""

    url: str | FromEnv
    """The server's MCP endpoint, e.g. `https://tickets.example.com/mcp`, or read from the
    worker's environment: `FromEnv("TICKETS_URL")`."""
    headers: Mapping[str, HeaderValue] = field(default_factory=dict, hash=False)
    """Request headers; secret values come from the worker's environment or files."""
    connect_timeout: timedelta = timedelta(seconds=10)
    """How long connecting may take."""


@dataclass(frozen=True)
class MCPToolTerms:
    """What the spec says about one of a server's tools (by its name on the server)."""

    side_effect: SideEffect | None = None
    """Overrides what the tool's annotations say."""
    scopes: tuple[str, ...] | None = None
    """Scopes a run needs to call it (default: the server's)."""
    timeout: timedelta | None = None
    """How long one call may take (default: the server's)."""
    max_attempts: int | None = None
    """Attempts at a call that fails transiently (default: the server's)."""


@dataclass(frozen=True)
class MCPServer:
    """An MCP server whose tools an agent may call, as durable as the agent's own tools."""

    name: str
    """Unique among the agent's servers; shown in the UI and the audit trail."""
    transport: Stdio | StreamableHTTP
    """Where the server is: `Stdio(...)` or `StreamableHTTP(...)`."""
    allow: tuple[str, ...] | None = None
    """Only these tools (names on the server); None: all but `deny`."""
    deny: tuple[str, ...] = ()
    """Tools the agent never sees."""
    rename: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Server name -> the name the model sees (to avoid clashes between servers)."""
    tools: Mapping[str, MCPToolTerms] = field(default_factory=dict, hash=False)
    """Per-tool terms, by the tool's name on the server."""
    side_effect: SideEffect | None = None
    """Every tool's side effect unless `tools` says otherwise; None: from annotations."""
    scopes: tuple[str, ...] = ()
    """Scopes a run needs to call any tool of this server."""
    audience: str | None = None
    """The system behind the server, as the identity provider names it: each call then
    carries a token of its own (subject the run's principal, actor the agent, the tool's
    scopes), sent as `Authorization: Bearer` over streamable HTTP (`ToolContext.token` for the
    agent's own tools). None: the transport's own headers only."""
    timeout: timedelta = timedelta(seconds=30)
    """How long one call may take; past it the call fails as a Timeout and is retried."""
    max_attempts: int = 3
    """Attempts at a call that fails transiently (the server crashed, a timeout)."""
    list_tools: Literal["once", "each_turn"] = "once"
    """`once`: list the tools when the run starts (kept across continue-as-new); `each_turn`:
    list them again before every model turn (each listing is an activity in history)."""

    def terms(self, tool: str) -> MCPToolTerms:
        return self.tools.get(tool, MCPToolTerms())

    def exposed(self, tool: str) -> str:
        return self.rename.get(tool, tool)

    def offers(self, tool: str) -> bool:
        return tool not in self.deny and (self.allow is None or tool in self.allow)

    def check(self) -> None:
        """Raise MCPConfigError for settings that cannot work, whoever loads them."""
        if not self.name or not self.name.replace("-", "_").isidentifier():
            raise MCPConfigError(f"MCP server name {self.name!r}: use letters, digits, - and _")
        url = self.transport.url if isinstance(self.transport, StreamableHTTP) else None
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            raise MCPConfigError(f"MCP server {self.name}: url {url!r} is not http(s)")
        names = [self.exposed(t) for t in self.rename]
        if len(set(names)) != len(names):
            raise MCPConfigError(f"MCP server {self.name}: rename gives two tools one name")

    def check_worker(self) -> None:
        """Raise MCPConfigError when this worker lacks what the server needs (a secret)."""
        if isinstance(self.transport, StreamableHTTP):
            for value in [self.transport.url, *self.transport.headers.values()]:
                if not isinstance(value, str):
                    try:
                        value.resolve()
                    except MCPConfigError as exc:
                        raise MCPConfigError(f"MCP server {self.name}: {exc}") from None
