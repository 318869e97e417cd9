"""`agentctl agents [NAME]`: the agents this CLI knows, and whether a worker serves them.

The CLI loads the same plugins a worker does (installed entry points, DURABLE_AGENTS_PLUGINS)
and lists their agents with or without a server. When a server answers, it adds, per agent, how
many workers polling the task queue serve it: a worker's identity carries a short tag of its
agents, matched against the plugins this CLI loads, and worker heartbeats fill in the rest
(workers/identity.py explains the choice).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from durable_agents.starters.common import Address, AsJson, call, call_sync, emit

if TYPE_CHECKING:
    from durable_agents._catalog import Catalog
    from durable_agents._spec import AgentSpec
    from durable_agents.workers.identity import Fleet


def describe(spec: AgentSpec) -> dict[str, Any]:
    """What an operator needs to know of an agent, as plain data."""
    from durable_agents._approvals import ApprovalPolicy

    policy = spec.approvals or ApprovalPolicy()
    budget = spec.budget
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "model_route": list(spec.model_route),
        "tools": [
            {
                "name": t.name,
                "side_effect": t.side_effect,
                "scopes": list(t.required_scopes),
                **({"task_queue": t.task_queue} if t.task_queue else {}),
                **({"audience": t.audience} if t.audience else {}),
            }
            for t in spec.tools
        ],
        "mcp_servers": [_server(s) for s in spec.mcp_servers],
        "approvals": [
            {
                "tool": r.tool,
                "rule": r.description,
                "needed": r.needed,
                "principals": list(r.principals),
                "groups": list(r.groups),
                "expires_after_hours": r.expires_after.total_seconds() / 3600,
            }
            for r in policy.rules
        ]
        + [{"default": "irreversible tools", "groups": list(policy.default_groups)}],
        "budget": {
            "max_turns": spec.max_turns,
            "max_input_tokens": budget.max_input_tokens,
            "max_output_tokens": budget.max_output_tokens,
            "max_cost_usd": str(budget.max_cost_usd) if budget.max_cost_usd else None,
            "deadline_hours": budget.deadline.total_seconds() / 3600 if budget.deadline else None,
            "on_exhausted": budget.on_exhausted,
        },
        "scopes": list(spec.scopes()),
    }


def _server(server: Any) -> dict[str, Any]:
    """An MCP server as an operator sees it: where, which tools, on what terms (its tools are
    listed by each run when it starts). No secret is shown: only where it comes from."""
    from durable_agents._mcp import Stdio

    transport = server.transport
    if isinstance(transport, Stdio):
        where = " ".join([transport.command, *transport.args])
    else:
        url = transport.url
        where = url if isinstance(url, str) else f"${url.name} ({url.template})"
    row: dict[str, Any] = {"name": server.name, "where": where}
    if server.allow is not None:
        row["allow"] = list(server.allow)
    if server.deny:
        row["deny"] = list(server.deny)
    if server.rename:
        row["rename"] = dict(server.rename)
    row["side_effect"] = server.side_effect or "from each tool's annotations"
    if server.scopes:
        row["scopes"] = list(server.scopes)
    return row


def _text(row: dict[str, Any]) -> str:
    from durable_agents._vocab.text import printable

    tools = ", ".join(
        f"{t['name']} ({t['side_effect']}{'; ' + ' '.join(t['scopes']) if t['scopes'] else ''}"
        f"{'; token for ' + t['audience'] if t.get('audience') else ''})"
        for t in row["tools"]
    )
    rules = "; ".join(
        f"{r['tool']}: {r['rule']} → {', '.join(r['principals'] + ['@' + g for g in r['groups']])}"
        for r in row["approvals"]
        if "tool" in r
    )
    budget = ", ".join(f"{k}={v}" for k, v in row["budget"].items() if v is not None)
    lines = [
        f"{row['name']} {row['version']}: {row['description']}",
        f"  model route: {' → '.join(row['model_route'])}",
        f"  tools: {tools or 'none of its own'}",
        *(
            f"  MCP server {s['name']}: {s['where']}; tools listed by each run"
            + "".join(f"; {k} {v}" for k, v in s.items() if k not in ("name", "where"))
            for s in row["mcp_servers"]
        ),
        f"  approvals: {rules or 'irreversible tools, by the default groups'}",
        f"  budget: {budget}",
        f"  workers: {row['workers']}",
    ]
    return "\n".join(printable(line) for line in lines)


async def _fleet(address: str | None, queue: str, catalog: Catalog) -> tuple[Fleet | None, str]:
    """The workers on `queue` and what they serve; with no server to ask, None and why (the
    agents are listed all the same)."""
    from temporalio.service import RPCError

    from durable_agents import _ops as ops
    from durable_agents.errors import DurableAgentsError
    from durable_agents.starters.common import note
    from durable_agents.workers.identity import fleet_on

    try:
        client = await ops.connect(address)
    except DurableAgentsError as exc:
        note(f"workers not known: {exc}")
        return None, "not known (no Temporal server answered)"
    try:
        return await fleet_on(client, queue, catalog), ""
    except RPCError as exc:
        note(f"workers not known: the server refused to list them: {exc}")
        return None, "not known (the server did not list them)"


def agents(
    name: Annotated[str | None, typer.Argument(help="Only this agent.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include probe agents.")] = False,
    task_queue: Annotated[
        str | None, typer.Option(help="The queue whose workers to ask (default: the usual one).")
    ] = None,
    offline: Annotated[bool, typer.Option(help="Do not ask the server about workers.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """The agents this CLI knows: version, model route, tools, approvals, budget, workers."""
    from durable_agents import _ops as ops
    from durable_agents.settings import current

    catalog = call_sync(ops.catalog)
    specs = [call_sync(lambda: ops.spec(name))] if name else None
    if specs is None:
        specs = list(catalog.agents.values()) if show_all else catalog.visible()
    queue = task_queue or current().task_queue
    fleet, unasked = None, "not asked (--offline)"
    if not offline:
        fleet, unasked = call(lambda: _fleet(address, queue, catalog))
    rows = []
    for spec in sorted(specs, key=lambda s: s.name):
        row = describe(spec)
        if fleet is None:
            row["workers"] = unasked
        else:
            n = fleet.serving.get(spec.name, 0)
            row["workers"] = f"{n} on {queue!r}" if n else f"none on {queue!r} serves it"
            if fleet.untold:
                row["workers"] += (
                    f"; {fleet.untold} more whose agents this CLI cannot tell (a plugin it "
                    "does not load, or no heartbeat yet)"
                )
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        emit(rows, "\n\n".join(_text(r) for r in rows), False)
