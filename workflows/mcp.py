"""Listing MCP servers' tools in a run: an activity once per run, or before every turn when the
spec asks (`workflows/mcp_tools.py` turns the recorded list into contracts).

The list lives in history (the activity's result) and in the state carried across
continue-as-new, so replay never asks a server and a server that changes its tools later cannot
change a run in flight.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_agents._mcp import MCPServer
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab.names import LIST_MCP_TOOLS
    from durable_agents._vocab.schemas import MCPListRequest, MCPToolList
    from durable_agents.workflows.exits import aborted
    from durable_agents.workflows.state import RunState
    from durable_agents.workflows.turns import cancelled, failure_message, failure_type
    from durable_agents.workflows.waits import park


async def list_tools(state: RunState, spec: AgentSpec, *, every_turn: bool = False) -> None:
    """List the servers' tools that are due: all of them when the run starts, those with
    `list_tools="each_turn"` before every later turn."""
    for server in spec.mcp_servers:
        listed = server.name in state.mcp.listed
        if listed and not (every_turn and server.list_tools == "each_turn"):
            continue
        await _list(state, spec, server)


async def _list(state: RunState, spec: AgentSpec, server: MCPServer) -> None:
    # Names already taken: the agent's own tools and the other servers' (two tools with one
    # name would be refused by the model's provider, and calls could go to the wrong server).
    taken = [t.name for t in spec.tools] + [
        t.exposed for t in state.mcp.tools if t.server != server.name
    ]
    request = MCPListRequest(agent=spec.name, server=server.name, native=taken)
    while True:
        try:
            found: MCPToolList = await workflow.execute_activity(
                LIST_MCP_TOOLS,
                request,
                result_type=MCPToolList,
                start_to_close_timeout=server.timeout,
                heartbeat_timeout=min(server.timeout, timedelta(seconds=10)),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=server.max_attempts,
                ),
                summary=f"MCP {server.name} · list tools",
            )
            break
        except ActivityError as err:
            if cancelled(err):
                raise
            reason = (
                f"listing the tools of MCP server {server.name} failed: "
                f"{failure_type(err)}: {failure_message(err)}"
            )
            action = await park(state, reason)
            if action == "abort":
                raise aborted(state) from None
            if action == "retry_turn":
                state.note("note", f"going on without the tools of MCP server {server.name}")
                found = MCPToolList(server=server.name)
                break
    before = [t for t in state.mcp.tools if t.server == server.name]
    if before != found.tools:
        state.store.preamble = ""  # the tools the model sees changed: a new preamble
    state.mcp.tools = [t for t in state.mcp.tools if t.server != server.name] + found.tools
    if server.name not in state.mcp.listed:
        state.mcp.listed.append(server.name)
    names = ", ".join(f"{t.exposed} ({t.side_effect})" for t in found.tools) or "none"
    state.note("note", f"MCP server {server.name}: tools {names}")
