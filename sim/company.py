"""HR, IT and mail: the company systems the onboarding agent changes.

Each system is just pydantic bodies plus effect functions registered as `Action`s; the ledger
module supplies idempotency, fault injection and the audit trail. Further systems (payments,
tickets) follow the same pattern in their own module and are added to `create_app`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sim.db import Database
from sim.ledger import Action, entries

MAIL_DOMAIN = "acme.example"
LAPTOP_LEAD_DAYS = 5


class MailboxIn(BaseModel):
    employee_id: str = Field(min_length=1)
    full_name: str = Field(min_length=1)


class LaptopIn(BaseModel):
    employee_id: str = Field(min_length=1)
    model: str = Field(min_length=1)
    ship_to: str = Field(min_length=1)


class EmailIn(BaseModel):
    to: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str
    body: str


class EchoIn(BaseModel):
    text: str


class DocumentIn(BaseModel):
    doc_id: str = Field(min_length=1)
    chars: int = Field(default=2000, ge=0, le=20_000_000)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def mailbox_address(full_name: str) -> str:
    """'Ada King Lovelace' -> 'ada.king.lovelace@acme.example'."""
    return ".".join(full_name.lower().split()) + "@" + MAIL_DOMAIN


def create_mailbox(conn: sqlite3.Connection, body: MailboxIn) -> dict[str, Any]:
    return {"mailbox_id": new_id("mbx"), "address": mailbox_address(body.full_name)}


def order_laptop(conn: sqlite3.Connection, body: LaptopIn) -> dict[str, Any]:
    eta = date.today() + timedelta(days=LAPTOP_LEAD_DAYS)
    return {"order_id": new_id("ord"), "status": "ordered", "eta": eta.isoformat()}


def send_email(conn: sqlite3.Connection, body: EmailIn) -> dict[str, Any]:
    return {"message_id": new_id("msg"), "status": "sent"}


def echo(conn: sqlite3.Connection, body: EchoIn) -> dict[str, Any]:
    return {"text": body.text}


WORDS = ["agents", "durable", "history", "ledger", "approval", "workflow", "message", "turn"]


def document_text(doc_id: str, chars: int) -> str:
    """The same text for the same document every time: words picked by the id's hash."""
    seed = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16)
    words, size, i = [], 0, 0
    while size < chars:
        word = WORDS[(seed + i * 7 + i // 3) % len(WORDS)]
        words.append(word)
        size += len(word) + 1
        i += 1
    return f"{doc_id}: {' '.join(words)}"[:chars]


def read_document(conn: sqlite3.Connection, body: DocumentIn) -> dict[str, Any]:
    return {"doc_id": body.doc_id, "text": document_text(body.doc_id, body.chars)}


ACTIONS: list[Action] = [
    # Changes take a token from the sim's identity provider for the system, with the scope.
    Action(
        "create_mailbox",
        "/hr/mailboxes",
        MailboxIn,
        create_mailbox,
        audience="hr",
        scope="hr:write",
    ),
    Action("order_laptop", "/it/laptops", LaptopIn, order_laptop, audience="it", scope="it:write"),
    Action("send_email", "/mail/messages", EmailIn, send_email, audience="mail", scope="mail:send"),
    Action("echo", "/tools/echo", EchoIn, echo, status_code=200, mutating=False),
    Action(
        "read_document", "/docs/read", DocumentIn, read_document, status_code=200, mutating=False
    ),
]


def mail_router(db: Database) -> APIRouter:
    """GET /mail/messages?to=X: the sent emails (read from the ledger, the source of truth)."""
    router = APIRouter(tags=["company"])

    @router.get("/mail/messages")
    def list_messages(to: str | None = None) -> dict[str, Any]:
        messages = [
            {**e["request"], **e["response"], "created_at": e["created_at"]}
            for e in entries(db, "send_email")
            if to is None or e["request"]["to"] == to
        ]
        return {"messages": messages}

    return router
