"""CRM, payments and tickets: the company systems the support-refund agent changes.

Same pattern as `sim.company`: pydantic bodies plus effect functions registered as `Action`s, so
every mutating endpoint requires an `Idempotency-Key`, replays by key and lands in the ledger.
Nothing fixed is seeded: `POST /admin/seed/order` makes a fresh customer, order and open ticket
per test or demo run, so no test can use up a shared fixture.

Money is `decimal.Decimal` throughout, stored and sent as strings with two places ("250.00").
One refund per order (no partial-then-more refunds); a refund captures exactly one held amount.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, HTTPException
from pydantic import AfterValidator, BaseModel, Field

from sim.db import Database
from sim.ledger import Action, ActionError, now_iso

REFUND_WINDOW_DAYS = 30
CENT = Decimal("0.01")
ZERO = "0.00"
CUSTOMER_DOMAIN = "customer.example"
_NAMES = (
    "Ada Byron",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
)

SUPPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    amount TEXT NOT NULL,
    purchased_at TEXT NOT NULL,
    refundable INTEGER NOT NULL,
    refund_id TEXT
);
CREATE TABLE IF NOT EXISTS holds (
    hold_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    amount TEXT NOT NULL,
    status TEXT NOT NULL,
    refund_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE REFERENCES orders (order_id),
    hold_id TEXT NOT NULL REFERENCES holds (hold_id),
    amount TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ticket_notes (
    note_id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (ticket_id),
    status TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_order ON holds (order_id);
CREATE INDEX IF NOT EXISTS notes_ticket ON ticket_notes (ticket_id);
"""


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT)


# A positive amount with at most two decimal places, normalized to exactly two ("250" ->
# "250.00"), so "250" and "250.00" are the same request for idempotency purposes.
Amount = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2), AfterValidator(_cents)]
TicketStatus = Literal["open", "refund_pending", "resolved", "refund_rejected"]
TICKET_STATUSES: tuple[str, ...] = get_args(TicketStatus)


def money(value: Decimal | str) -> str:
    """The wire form of an amount: a string with exactly two decimal places."""
    return str(_cents(Decimal(value)))


# --- bodies ------------------------------------------------------------------------------------


class SeedOrderIn(BaseModel):
    amount: Amount = Decimal("250.00")
    purchased_days_ago: int = Field(default=3, ge=0, le=3650)
    refundable: bool = True
    name: str | None = Field(default=None, min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


class VerifyIn(BaseModel):
    customer_id: str = Field(min_length=1)
    email: str = Field(min_length=1)


class EligibilityIn(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Amount


class HoldIn(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Amount


class ReleaseIn(BaseModel):
    hold_id: str = Field(min_length=1)


class RefundIn(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Amount
    hold_id: str = Field(min_length=1)


class TicketUpdateIn(BaseModel):
    ticket_id: str = Field(min_length=1)
    status: TicketStatus
    note: str = Field(default="", max_length=4000)


# --- helpers -----------------------------------------------------------------------------------


def _short_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _long_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _unique_id(conn: sqlite3.Connection, table: str, column: str, prefix: str) -> str:
    """A short id not yet used in `table` (6 hex digits collide rarely, but tests run often)."""
    while True:
        candidate = _short_id(prefix)
        found = conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (candidate,)).fetchone()
        if found is None:
            return candidate


def _one(conn: sqlite3.Connection, sql: str, key: str, what: str) -> sqlite3.Row:
    row = conn.execute(sql, (key,)).fetchone()
    if row is None:
        raise ActionError(404, f"{what} {key!r} does not exist")
    return row


def _order(conn: sqlite3.Connection, order_id: str) -> sqlite3.Row:
    return _one(conn, "SELECT * FROM orders WHERE order_id = ?", order_id, "order")


def _hold(conn: sqlite3.Connection, hold_id: str) -> sqlite3.Row:
    return _one(conn, "SELECT * FROM holds WHERE hold_id = ?", hold_id, "hold")


def _age_days(order: sqlite3.Row) -> int:
    return (datetime.now(UTC) - datetime.fromisoformat(order["purchased_at"])).days


def _ineligibility(order: sqlite3.Row) -> str | None:
    """Why this order cannot be refunded at all (None if it can)."""
    if order["refund_id"] is not None:
        return f"order {order['order_id']} was already refunded (refund {order['refund_id']})"
    if not order["refundable"]:
        return f"order {order['order_id']} is a final sale and not refundable"
    age = _age_days(order)
    if age > REFUND_WINDOW_DAYS:
        return (
            f"order {order['order_id']} was purchased {age} days ago; refunds are possible "
            f"within {REFUND_WINDOW_DAYS} days of purchase"
        )
    return None


def _hold_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "hold_id": row["hold_id"],
        "order_id": row["order_id"],
        "amount": row["amount"],
        "status": row["status"],
        "refund_id": row["refund_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# --- effects -----------------------------------------------------------------------------------


def seed_order(conn: sqlite3.Connection, body: SeedOrderIn) -> dict[str, Any]:
    """A fresh customer, an order of theirs and an open ticket asking for its refund."""
    customer_id = _unique_id(conn, "customers", "customer_id", "C")
    order_id = _unique_id(conn, "orders", "order_id", "O")
    ticket_id = _unique_id(conn, "tickets", "ticket_id", "T")
    name = body.name or random.choice(_NAMES)
    email = body.email or f"{'.'.join(name.lower().split())}.{customer_id[2:]}@" + (CUSTOMER_DOMAIN)
    now = now_iso()
    purchased = datetime.now(UTC) - timedelta(days=body.purchased_days_ago)
    amount = money(body.amount)
    conn.execute(
        "INSERT INTO customers (customer_id, name, email, created_at) VALUES (?, ?, ?, ?)",
        (customer_id, name, email, now),
    )
    conn.execute(
        "INSERT INTO orders (order_id, customer_id, amount, purchased_at, refundable) "
        "VALUES (?, ?, ?, ?, ?)",
        (order_id, customer_id, amount, purchased.isoformat(), int(body.refundable)),
    )
    conn.execute(
        "INSERT INTO tickets (ticket_id, customer_id, order_id, subject, status, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?)",
        (ticket_id, customer_id, order_id, f"Refund request for order {order_id}", now, now),
    )
    return {
        "customer_id": customer_id,
        "name": name,
        "email": email,
        "order_id": order_id,
        "ticket_id": ticket_id,
        "amount": amount,
    }


def verify_customer(conn: sqlite3.Connection, body: VerifyIn) -> dict[str, Any]:
    """Does the email on file match? The name is only disclosed to a verified caller."""
    row = _one(conn, "SELECT * FROM customers WHERE customer_id = ?", body.customer_id, "customer")
    verified = row["email"].strip().lower() == body.email.strip().lower()
    return {
        "customer_id": row["customer_id"],
        "verified": verified,
        "name": row["name"] if verified else None,
    }


def check_refund_eligibility(conn: sqlite3.Connection, body: EligibilityIn) -> dict[str, Any]:
    order = _order(conn, body.order_id)
    order_amount = Decimal(order["amount"])
    reason = _ineligibility(order)
    max_refundable = ZERO if reason else money(order_amount)
    if reason is None and body.amount > order_amount:
        reason = (
            f"the requested amount {money(body.amount)} exceeds the order amount "
            f"{money(order_amount)}"
        )
    return {
        "order_id": order["order_id"],
        "eligible": reason is None,
        "reason": reason or f"within the {REFUND_WINDOW_DAYS}-day refund window",
        "max_refundable": max_refundable,
    }


def place_hold(conn: sqlite3.Connection, body: HoldIn) -> dict[str, Any]:
    order = _order(conn, body.order_id)
    if order["refund_id"] is not None:
        raise ActionError(409, f"order {body.order_id} was already refunded ({order['refund_id']})")
    if body.amount > Decimal(order["amount"]):
        raise ActionError(
            422,
            f"cannot hold {money(body.amount)}: the order amount is {order['amount']}",
        )
    hold_id = _long_id("hold")
    now = now_iso()
    conn.execute(
        "INSERT INTO holds (hold_id, order_id, amount, status, created_at, updated_at) "
        "VALUES (?, ?, ?, 'held', ?, ?)",
        (hold_id, body.order_id, money(body.amount), now, now),
    )
    return {
        "hold_id": hold_id,
        "order_id": body.order_id,
        "amount": money(body.amount),
        "status": "held",
    }


def release_hold(conn: sqlite3.Connection, body: ReleaseIn) -> dict[str, Any]:
    """Release a hold; releasing a released hold succeeds again, a captured one is a 409."""
    hold = _hold(conn, body.hold_id)
    if hold["status"] == "captured":
        raise ActionError(
            409,
            f"hold {body.hold_id} was captured by refund {hold['refund_id']} and cannot be "
            "released; the refund is irreversible",
        )
    if hold["status"] == "held":
        conn.execute(
            "UPDATE holds SET status = 'released', updated_at = ? WHERE hold_id = ?",
            (now_iso(), body.hold_id),
        )
    return {"hold_id": body.hold_id, "status": "released"}


def issue_refund(conn: sqlite3.Connection, body: RefundIn) -> dict[str, Any]:
    """Capture a held amount as a refund: the one irreversible step of the saga."""
    order = _order(conn, body.order_id)
    hold = _hold(conn, body.hold_id)
    if order["refund_id"] is not None:
        raise ActionError(409, f"order {body.order_id} was already refunded ({order['refund_id']})")
    if hold["status"] != "held":
        raise ActionError(
            409, f"hold {body.hold_id} is {hold['status']}; a refund needs an active hold"
        )
    if hold["order_id"] != body.order_id or Decimal(hold["amount"]) != body.amount:
        raise ActionError(
            422,
            f"hold {body.hold_id} is for {hold['amount']} on order {hold['order_id']}, not "
            f"{money(body.amount)} on order {body.order_id}",
        )
    reason = _ineligibility(order)
    if reason is not None:
        raise ActionError(422, f"refund not allowed: {reason}")
    refund_id = _long_id("re")
    now = now_iso()
    amount = money(body.amount)
    conn.execute(
        "INSERT INTO refunds (refund_id, order_id, hold_id, amount, status, created_at) "
        "VALUES (?, ?, ?, ?, 'refunded', ?)",
        (refund_id, body.order_id, body.hold_id, amount, now),
    )
    conn.execute("UPDATE orders SET refund_id = ? WHERE order_id = ?", (refund_id, body.order_id))
    conn.execute(
        "UPDATE holds SET status = 'captured', refund_id = ?, updated_at = ? WHERE hold_id = ?",
        (refund_id, now, body.hold_id),
    )
    return {
        "refund_id": refund_id,
        "order_id": body.order_id,
        "amount": amount,
        "status": "refunded",
    }


def update_ticket(conn: sqlite3.Connection, body: TicketUpdateIn) -> dict[str, Any]:
    _one(conn, "SELECT 1 FROM tickets WHERE ticket_id = ?", body.ticket_id, "ticket")
    note_id = _long_id("note")
    now = now_iso()
    conn.execute(
        "UPDATE tickets SET status = ?, updated_at = ? WHERE ticket_id = ?",
        (body.status, now, body.ticket_id),
    )
    conn.execute(
        "INSERT INTO ticket_notes (note_id, ticket_id, status, note, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (note_id, body.ticket_id, body.status, body.note, now),
    )
    return {"ticket_id": body.ticket_id, "status": body.status, "note_id": note_id}


ACTIONS: list[Action] = [
    Action("verify_customer", "/crm/verify", VerifyIn, verify_customer, 200, mutating=False),
    Action(
        "check_refund_eligibility",
        "/payments/eligibility",
        EligibilityIn,
        check_refund_eligibility,
        200,
        mutating=False,
    ),
    # Changes take a token from the sim's identity provider for the system, with the scope.
    Action(
        "place_hold",
        "/payments/holds",
        HoldIn,
        place_hold,
        audience="payments",
        scope="payments:write",
    ),
    Action(
        "release_hold",
        "/payments/holds/release",
        ReleaseIn,
        release_hold,
        audience="payments",
        scope="payments:write",
    ),
    Action(
        "issue_refund",
        "/payments/refunds",
        RefundIn,
        issue_refund,
        audience="payments",
        scope="payments:refund",
    ),
    Action(
        "update_ticket",
        "/tickets/update",
        TicketUpdateIn,
        update_ticket,
        audience="tickets",
        scope="tickets:write",
    ),
]


# --- reads and admin ---------------------------------------------------------------------------


def _found(rows: list[sqlite3.Row], what: str, key: str) -> sqlite3.Row:
    if not rows:
        raise HTTPException(404, f"{what} {key!r} does not exist")
    return rows[0]


def support_router(db: Database) -> APIRouter:
    """Seeding (admin: no key, not in the ledger) and the read side of CRM, payments, tickets."""
    router = APIRouter(tags=["support"])

    @router.post("/admin/seed/order", status_code=201)
    def seed(body: SeedOrderIn | None = None) -> dict[str, Any]:
        with db.transaction() as conn:
            return seed_order(conn, body or SeedOrderIn())

    @router.get("/tickets/{ticket_id}")
    def get_ticket(ticket_id: str) -> dict[str, Any]:
        row = _found(
            db.query("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)), "ticket", ticket_id
        )
        notes = db.query(
            "SELECT note_id, status, note, created_at FROM ticket_notes WHERE ticket_id = ? "
            "ORDER BY rowid",
            (ticket_id,),
        )
        return {
            "ticket_id": row["ticket_id"],
            "customer_id": row["customer_id"],
            "order_id": row["order_id"],
            "subject": row["subject"],
            "status": row["status"],
            "notes": [dict(n) for n in notes],
        }

    @router.get("/payments/holds/{hold_id}")
    def get_hold(hold_id: str) -> dict[str, Any]:
        rows = db.query("SELECT * FROM holds WHERE hold_id = ?", (hold_id,))
        return _hold_view(_found(rows, "hold", hold_id))

    @router.get("/payments/refunds")
    def list_refunds(order_id: str | None = None) -> dict[str, Any]:
        where, params = ("WHERE order_id = ?", (order_id,)) if order_id else ("", ())
        rows = db.query(f"SELECT * FROM refunds {where} ORDER BY rowid", params)
        return {"refunds": [dict(r) for r in rows]}

    @router.get("/payments/orders/{order_id}")
    def get_order(order_id: str) -> dict[str, Any]:
        row = _found(
            db.query("SELECT * FROM orders WHERE order_id = ?", (order_id,)), "order", order_id
        )
        holds = db.query("SELECT * FROM holds WHERE order_id = ? ORDER BY rowid", (order_id,))
        return {
            "order_id": row["order_id"],
            "customer_id": row["customer_id"],
            "amount": row["amount"],
            "purchased_at": row["purchased_at"],
            "refundable": bool(row["refundable"]),
            "refunded": row["refund_id"] is not None,
            "refund_id": row["refund_id"],
            "holds": [_hold_view(h) for h in holds],
        }

    return router
