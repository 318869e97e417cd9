"""The company's ticket system as an MCP server: streamable HTTP at `<sim url>/mcp`.

The same SQLite tables and ledger as the HTTP systems (`sim.support`, `sim.ledger`), reached
through MCP instead of REST, so an agent can use them through `AgentSpec.mcp_servers`:

- `lookup_ticket` (readOnlyHint): a ticket with its customer, order and notes.
- `add_ticket_note` (neither read-only nor destructive): a note on the ticket's record.
- `close_ticket` (destructiveHint): resolve the ticket and email the resolution to the
  customer, which cannot be taken back.

A tool that changes state needs the caller's idempotency key in the request's
`_meta["idempotency_key"]` (durable-agents sends `<workflow id>/<tool call id>`). Its effect and
its ledger row share one transaction (`sim.ledger.commit`): the same key again replays the stored
answer without a new effect, a key already used for another request is refused, and a call
without a key is refused before anything happens. Refusals are tool errors (`isError`).

The server is stateless and answers in JSON (no SSE streams, no session to lose between a
worker's calls). `create_app` mounts it and runs its session manager in the app's lifespan.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver import MCPServer as FastMCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute, Route

from sim.company import new_id
from sim.db import Database
from sim.idp import Grant, IdentityProvider
from sim.ledger import Action, ActionError, commit, now_iso
from sim.mcp_auth import guarded

MCP_PATH = "/mcp"
IDEMPOTENCY_META = "idempotency_key"

TicketId = Annotated[
    str, Field(min_length=1, max_length=64, description="The ticket, e.g. T-1a2b3c")
]


# --- what the tools answer ---------------------------------------------------------------------


class Customer(BaseModel):
    customer_id: str
    name: str
    email: str


class Order(BaseModel):
    order_id: str
    amount: str
    refunded: bool


class Note(BaseModel):
    note_id: str
    status: str
    note: str
    created_at: str


class Ticket(BaseModel):
    ticket_id: str
    subject: str
    status: str
    customer: Customer
    order: Order
    notes: list[Note]


class NoteAdded(BaseModel):
    ticket_id: str
    status: str
    note_id: str


class TicketClosed(BaseModel):
    ticket_id: str
    status: str
    note_id: str
    emailed_to: str
    message_id: str


# --- what the effects receive (the ledger's request, for idempotency) ---------------------------


class NoteIn(BaseModel):
    ticket_id: str
    note: str


class CloseIn(BaseModel):
    ticket_id: str
    resolution: str


# --- effects: one transaction each, run by `sim.ledger.commit` ---------------------------------


def _ticket_row(conn: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise ActionError(404, f"ticket {ticket_id!r} does not exist")
    return row


def _add_note(conn: sqlite3.Connection, ticket_id: str, status: str, note: str) -> str:
    note_id = new_id("note")
    now = now_iso()
    conn.execute(
        "UPDATE tickets SET status = ?, updated_at = ? WHERE ticket_id = ?",
        (status, now, ticket_id),
    )
    conn.execute(
        "INSERT INTO ticket_notes (note_id, ticket_id, status, note, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (note_id, ticket_id, status, note, now),
    )
    return note_id


def add_note_effect(conn: sqlite3.Connection, body: NoteIn) -> dict[str, Any]:
    status = _ticket_row(conn, body.ticket_id)["status"]
    note_id = _add_note(conn, body.ticket_id, status, body.note)
    return {"ticket_id": body.ticket_id, "status": status, "note_id": note_id}


def close_effect(conn: sqlite3.Connection, body: CloseIn) -> dict[str, Any]:
    """Resolve the ticket and email the customer: refused if it is resolved already."""
    ticket = _ticket_row(conn, body.ticket_id)
    if ticket["status"] == "resolved":
        raise ActionError(409, f"ticket {body.ticket_id} is already resolved")
    customer = conn.execute(
        "SELECT email FROM customers WHERE customer_id = ?", (ticket["customer_id"],)
    ).fetchone()
    note_id = _add_note(conn, body.ticket_id, "resolved", body.resolution)
    return {
        "ticket_id": body.ticket_id,
        "status": "resolved",
        "note_id": note_id,
        "emailed_to": customer["email"],
        "message_id": new_id("msg"),
    }


# Ledger actions (the path only names where they are served).
ADD_NOTE = Action(
    "add_ticket_note", MCP_PATH, NoteIn, add_note_effect, audience="tickets", scope="tickets:write"
)
CLOSE = Action(
    "close_ticket", MCP_PATH, CloseIn, close_effect, audience="tickets", scope="tickets:write"
)
# What changes state, by tool name: the endpoint takes only a valid token for these
# (`sim.mcp_auth`).
GUARDED = {action.name: action for action in (ADD_NOTE, CLOSE)}


def lookup(db: Database, ticket_id: str) -> Ticket:
    rows = db.query(
        "SELECT t.ticket_id, t.subject, t.status, c.customer_id, c.name, c.email, o.order_id, "
        "o.amount, o.refund_id FROM tickets t JOIN customers c USING (customer_id) "
        "JOIN orders o ON o.order_id = t.order_id WHERE t.ticket_id = ?",
        (ticket_id,),
    )
    if not rows:
        raise ToolError(f"ticket {ticket_id!r} does not exist")
    row = rows[0]
    notes = db.query(
        "SELECT note_id, status, note, created_at FROM ticket_notes WHERE ticket_id = ? "
        "ORDER BY rowid",
        (ticket_id,),
    )
    return Ticket(
        ticket_id=row["ticket_id"],
        subject=row["subject"],
        status=row["status"],
        customer=Customer(customer_id=row["customer_id"], name=row["name"], email=row["email"]),
        order=Order(
            order_id=row["order_id"], amount=row["amount"], refunded=row["refund_id"] is not None
        ),
        notes=[Note(**dict(n)) for n in notes],
    )


def _key(ctx: Context, tool: str) -> str:
    meta = ctx.request_context.meta
    key = meta.get(IDEMPOTENCY_META) if meta else None
    if not isinstance(key, str) or not key.strip():
        raise ToolError(
            f"{tool} changes state: the request's _meta must carry an {IDEMPOTENCY_META!r} "
            "(a key used again replays the first answer)"
        )
    return key


def _grant(ctx: Context, action: Action) -> Grant:
    """What the caller's token proved (`sim.mcp_auth` checked it before the server ran)."""
    request = ctx.request_context.request
    grant = getattr(getattr(request, "state", None), "grant", None)
    if not isinstance(grant, Grant):
        raise ToolError(f"{action.name} changes state: a bearer token is required")
    return grant


async def _perform(
    db: Database, action: Action, key: str, body: BaseModel, grant: Grant
) -> dict[str, Any]:
    try:
        _, response, _ = await anyio.to_thread.run_sync(commit, db, action, key, body, grant)
    except ActionError as exc:
        raise ToolError(exc.message) from None
    if not isinstance(response, dict):  # the ledger stores what the effects return: dicts
        raise ToolError(f"{action.name}: unexpected stored answer {json.dumps(response)[:200]}")
    return response


@contextmanager
def _logging_left_alone() -> Iterator[None]:
    """The SDK's server calls `logging.basicConfig` (a rich handler on the root logger); the
    sim runs inside other processes (tests, `agentctl demo`), whose logging is theirs to set.
    basicConfig does nothing while the root logger has a handler, so it gets one meanwhile."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


def build_server(db: Database) -> FastMCPServer:
    """A fresh MCP server on `db` (one per app: its session manager runs once)."""
    with _logging_left_alone():
        server: FastMCPServer = FastMCPServer(
            name="sim-company",
            version="1",
            instructions="Acme's support tickets: look them up, note them, close them.",
        )

    @server.tool(
        annotations=ToolAnnotations(
            title="Look up a support ticket",
            read_only_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        )
    )
    async def lookup_ticket(ticket_id: TicketId) -> Ticket:
        """A support ticket with its customer, order and notes. Read-only."""
        return await anyio.to_thread.run_sync(lookup, db, ticket_id)

    @server.tool(
        annotations=ToolAnnotations(
            title="Add a note to a ticket",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        )
    )
    async def add_ticket_note(
        ticket_id: TicketId,
        note: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: Context,
    ) -> NoteAdded:
        """Add an internal note to the ticket's record (the customer does not see it)."""
        key = _key(ctx, "add_ticket_note")
        body = NoteIn(ticket_id=ticket_id, note=note)
        grant = _grant(ctx, ADD_NOTE)
        return NoteAdded.model_validate(await _perform(db, ADD_NOTE, key, body, grant))

    @server.tool(
        annotations=ToolAnnotations(
            title="Close a ticket and email the customer",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    async def close_ticket(
        ticket_id: TicketId,
        resolution: Annotated[
            str,
            Field(min_length=1, max_length=4000, description="What was done, for the customer"),
        ],
        ctx: Context,
    ) -> TicketClosed:
        """Resolve the ticket and email the resolution to the customer. The email cannot be
        unsent: closing is final."""
        key = _key(ctx, "close_ticket")
        body = CloseIn(ticket_id=ticket_id, resolution=resolution)
        grant = _grant(ctx, CLOSE)
        return TicketClosed.model_validate(await _perform(db, CLOSE, key, body, grant))

    return server


def routes(server: FastMCPServer, idp: IdentityProvider | None = None) -> list[BaseRoute]:
    """The server's endpoint at MCP_PATH, stateless with JSON answers, for the sim's app.

    Only loopback Host and Origin headers are accepted (the SDK's DNS-rebinding protection),
    which is where the sim listens. Call `server.session_manager.run()` in the app's lifespan.
    """
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host="127.0.0.1"
    )
    found = list(app.routes)
    if idp is not None:  # tools that change state take only the provider's tokens
        for route in found:
            if isinstance(route, Route) and route.path == MCP_PATH:
                route.app = guarded(route.app, idp, GUARDED)
    return found
