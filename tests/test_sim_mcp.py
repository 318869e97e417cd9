"""The sim's ticket system as an MCP server (sim/mcp_server.py), through the real MCP client.

What the helpdesk agent and the MCP client core rely on: the tools and their annotations at
`<sim url>/mcp`, a read-only lookup, a destructive close whose effect the ledger records once per
idempotency key (`_meta["idempotency_key"]`), refusals as tool errors, and the `helpdesk` script
that drives the agent through them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, RequestParamsMeta, TextContent

from durable_agents._vocab.schemas import AgentRun
from durable_agents.workflows.agent import AgentWorkflow
from sim.conversation import Conversation, ToolCall, Turn
from sim.runner import SimServer
from sim.scripts import helpdesk
from tests.helpers import sim_token, wait_for_status
from tests.people import decide, start_run


class CallTokens(httpx2.Auth):
    """Each request a token of its own from the sim's provider, as a worker gets one per call
    (the ticket system takes a token for one idempotency key only)."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim

    def auth_flow(self, request: httpx2.Request) -> Any:
        token = sim_token(
            self.sim.url, self.sim.credentials, "helpdesk", "tickets", "tickets:write"
        )
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


@asynccontextmanager
async def mcp_session(sim: SimServer, tokens: bool = True) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(timeout=10, auth=CallTokens(sim) if tokens else None) as http,
        streamable_http_client(sim.url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def seed(sim: SimServer) -> dict[str, Any]:
    response = httpx.post(f"{sim.url}/admin/seed/order", json={"amount": "80.00"})
    response.raise_for_status()
    return dict(response.json())


def ledger(sim: SimServer, key: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{sim.url}/ledger").json()["entries"]
    return [e for e in entries if e["idempotency_key"] == key]


def ticket(sim: SimServer, ticket_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.url}/tickets/{ticket_id}").json())


def text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def keyed(key: str) -> RequestParamsMeta:
    """The request `_meta` that carries an idempotency key, as durable-agents sends it."""
    return cast(RequestParamsMeta, {"idempotency_key": key})  # an open map; mypy knows no extras


def new_key() -> str:
    return f"run-{uuid.uuid4().hex[:8]}/call-1"


async def test_lists_the_ticket_tools_with_their_annotations(sim: SimServer) -> None:
    async with mcp_session(sim) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}

    assert set(tools) == {"lookup_ticket", "add_ticket_note", "close_ticket"}
    lookup, note, close = tools["lookup_ticket"], tools["add_ticket_note"], tools["close_ticket"]
    assert lookup.input_schema["required"] == ["ticket_id"]
    assert close.input_schema["required"] == ["ticket_id", "resolution"]
    assert close.input_schema["properties"]["resolution"]["type"] == "string"
    assert lookup.annotations and lookup.annotations.read_only_hint is True
    assert note.annotations and note.annotations.read_only_hint is False
    assert note.annotations.destructive_hint is False
    assert close.annotations and close.annotations.read_only_hint is False
    assert close.annotations.destructive_hint is True
    assert close.output_schema and "message_id" in close.output_schema["properties"]


async def test_lookup_reads_the_ticket_its_customer_and_order(sim: SimServer) -> None:
    order = seed(sim)
    async with mcp_session(sim) as session:
        found = await session.call_tool("lookup_ticket", {"ticket_id": order["ticket_id"]})
        missing = await session.call_tool("lookup_ticket", {"ticket_id": "T-nope"})

    assert not found.is_error, text(found)
    value = found.structured_content
    assert value is not None and value["status"] == "open"
    assert value["customer"] == {k: order[k] for k in ("customer_id", "name", "email")}
    assert value["order"] == {"order_id": order["order_id"], "amount": "80.00", "refunded": False}
    assert json.loads(text(found)) == value  # the same answer as text, for any client
    assert missing.is_error and "does not exist" in text(missing)


async def test_close_ticket_happens_once_per_idempotency_key(sim: SimServer) -> None:
    order = seed(sim)
    args = {"ticket_id": order["ticket_id"], "resolution": "Replaced; sorry for the trouble."}
    meta = keyed("run-1/call-1")
    async with mcp_session(sim) as session:
        first = await session.call_tool("close_ticket", args, meta=meta)
        again = await session.call_tool("close_ticket", args, meta=meta)

    assert not first.is_error and not again.is_error, text(first) + text(again)
    assert first.structured_content is not None
    assert first.structured_content["status"] == "resolved"
    assert first.structured_content["emailed_to"] == order["email"]
    assert again.structured_content == first.structured_content  # replayed, not redone
    [entry] = ledger(sim, "run-1/call-1")
    assert entry["action"] == "close_ticket" and entry["request"] == args
    after = ticket(sim, order["ticket_id"])
    assert after["status"] == "resolved"
    assert [(n["status"], n["note"]) for n in after["notes"]] == [("resolved", args["resolution"])]


async def test_state_changes_are_refused_without_a_key(sim: SimServer) -> None:
    order = seed(sim)
    async with mcp_session(sim) as session:
        close = await session.call_tool(
            "close_ticket", {"ticket_id": order["ticket_id"], "resolution": "done"}
        )
        blank = await session.call_tool(
            "add_ticket_note",
            {"ticket_id": order["ticket_id"], "note": "n"},
            meta=keyed("  "),
        )

    for refused in (close, blank):
        assert refused.is_error and "idempotency_key" in text(refused)
    after = ticket(sim, order["ticket_id"])
    assert (after["status"], after["notes"]) == ("open", [])


async def test_a_used_key_or_a_closed_ticket_is_refused(sim: SimServer) -> None:
    order = seed(sim)
    key = new_key()
    args = {"ticket_id": order["ticket_id"], "resolution": "done"}
    async with mcp_session(sim) as session:
        note = await session.call_tool(
            "add_ticket_note",
            {"ticket_id": order["ticket_id"], "note": "called"},
            meta=keyed(key),
        )
        reused = await session.call_tool("close_ticket", args, meta=keyed(key))
        closed = await session.call_tool("close_ticket", args, meta=keyed(new_key()))
        twice = await session.call_tool("close_ticket", args, meta=keyed(new_key()))

    assert not note.is_error and note.structured_content is not None
    assert note.structured_content["status"] == "open"
    assert reused.is_error and "already used" in text(reused)
    assert not closed.is_error, text(closed)
    assert twice.is_error and "already resolved" in text(twice)
    assert [n["status"] for n in ticket(sim, order["ticket_id"])["notes"]] == ["open", "resolved"]


def rpc(sim: SimServer, name: str, arguments: dict[str, Any], token: str | None) -> httpx.Response:
    """One JSON-RPC `tools/call` to the stateless endpoint, as any MCP client sends it."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": {"idempotency_key": new_key()}},
    }
    return httpx.post(f"{sim.url}/mcp", json=body, headers=headers, timeout=10)


def test_a_state_change_through_mcp_needs_a_token_for_tickets_with_the_scope(
    sim: SimServer,
) -> None:
    order = seed(sim)
    args = {"ticket_id": order["ticket_id"], "note": "checked"}
    for token, status, error in [
        (None, 401, "invalid_token"),
        (sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write"), 401, "invalid_token"),
        (sim_token(sim.url, sim.credentials, "helpdesk", "tickets", ""), 403,
         "insufficient_scope"),
    ]:  # fmt: skip
        refused = rpc(sim, "add_ticket_note", args, token)
        assert refused.status_code == status, refused.text
        assert refused.headers["www-authenticate"] == f'Bearer realm="sim", error="{error}"'
    assert ticket(sim, order["ticket_id"])["notes"] == []
    # Reading needs none; a change with the right token is made and recorded as the agent's.
    assert rpc(sim, "lookup_ticket", {"ticket_id": order["ticket_id"]}, None).status_code == 200
    token = sim_token(sim.url, sim.credentials, "helpdesk", "tickets", "tickets:write")
    made = rpc(sim, "add_ticket_note", args, token)
    assert made.status_code == 200 and '"isError":false' in made.text.replace(" ", ""), made.text
    [entry] = [e for e in httpx.get(f"{sim.url}/ledger").json()["entries"]
               if e["request"] == {"ticket_id": order["ticket_id"], "note": "checked"}]  # fmt: skip
    assert (entry["agent"], entry["principal"], entry["scope"]) == ("helpdesk", "tester",
                                                                    "tickets:write")  # fmt: skip


# --- the helpdesk script, as a pure function of the conversation -------------------------------


def _conversation(*results: tuple[str, Any]) -> Conversation:
    turns = [Turn("user", 'Close the ticket.\n\nInput:\n{"ticket_id": "T-1"}')]
    for index, (tool, value) in enumerate(results):
        call = ToolCall(tool, {}, id=f"c{index}")
        turns.append(Turn("assistant", tool_calls=[call]))
        turns.append(Turn("tool", json.dumps(value), tool_call_id=call.id, name=tool))
    return Conversation(system="", turns=turns)


FOUND = {
    "ticket_id": "T-1",
    "subject": "Refund request for order O-1",
    "status": "open",
    "customer": {"customer_id": "C-1", "name": "Ada Byron", "email": "ada@customer.example"},
}
CLOSED = {"ticket_id": "T-1", "status": "resolved", "emailed_to": "ada@customer.example"}
CLOSED |= {"note_id": "note_1", "message_id": "msg_1"}


def test_the_helpdesk_script_looks_up_closes_then_answers() -> None:
    [lookup] = helpdesk(_conversation()).tool_calls
    assert (lookup.name, lookup.args) == ("lookup_ticket", {"ticket_id": "T-1"})
    [close] = helpdesk(_conversation(("lookup_ticket", FOUND))).tool_calls
    assert close.name == "close_ticket" and close.args["ticket_id"] == "T-1"
    assert close.args["resolution"].startswith("Hi Ada,")
    # A client may hand the structured content over wrapped; the script finds it.
    wrapped = ("lookup_ticket", {"structured_content": FOUND})
    assert helpdesk(_conversation(wrapped)).tool_calls[0].name == "close_ticket"
    done = helpdesk(_conversation(("lookup_ticket", FOUND), ("close_ticket", CLOSED)))
    assert not done.tool_calls and "msg_1" in done.text and "resolved" in done.text


def test_the_helpdesk_script_stops_on_a_no_or_a_closed_ticket() -> None:
    rejected = {"approval": "rejected", "decided_by": "sam", "reason": "not yet"}
    no = helpdesk(_conversation(("lookup_ticket", FOUND), ("close_ticket", rejected)))
    assert not no.tool_calls and "rejected (sam: not yet)" in no.text
    resolved = FOUND | {"status": "resolved"}
    already = helpdesk(_conversation(("lookup_ticket", resolved)))
    assert not already.tool_calls and "already resolved" in already.text
    missing = helpdesk(_conversation(("lookup_ticket", {"error": "ticket 'T-1' does not exist"})))
    assert not missing.tool_calls and "does not exist" in missing.text


# --- end to end: the helpdesk agent, its worker and the sim's MCP server -----------------------


async def test_helpdesk_closes_a_ticket_through_mcp_once_approved(  # type: ignore[no-untyped-def]
    ts_env, ts_worker, sim: SimServer, task_queue: str, ledger
) -> None:
    order = seed(sim)
    run = AgentRun(agent="helpdesk", input={"ticket_id": order["ticket_id"]}, principal="desk")
    handle = await start_run(ts_env.client, run, task_queue=task_queue)
    await wait_for_status(handle, "waiting_approval")
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert approval.tool == "close_ticket" and approval.arguments["ticket_id"] == order["ticket_id"]
    assert "support-leads" in approval.groups
    assert ledger(handle.id, "close_ticket") == 0  # nothing happens before the lead says yes

    await decide(handle, "sam", True)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "close_ticket") == 1
    assert order["email"] in result.answer
    assert ticket(sim, order["ticket_id"])["status"] == "resolved"
