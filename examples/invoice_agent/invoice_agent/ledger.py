"""The payables system the tools talk to: a small SQLite file standing in for a real one.

Payments are keyed by the idempotency key the tool is given, the way payment APIs honour an
`Idempotency-Key` header: a retried call finds its payment and pays nothing again. The file is
`INVOICE_AGENT_DB`, by default `invoice_agent.sqlite3` in the temporary directory, and starts
with a few invoices so that a fresh install has something to pay.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from pydantic import BaseModel

DB_ENV = "INVOICE_AGENT_DB"
SEED = [
    ("INV-1", "ACME GmbH", "120.00", "open"),
    ("INV-2", "Globex Ltd", "980.00", "open"),
    ("INV-3", "Initech Inc", "45.00", "paid"),
]
SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id TEXT PRIMARY KEY, vendor TEXT NOT NULL, amount TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key TEXT PRIMARY KEY, invoice_id TEXT NOT NULL, amount TEXT NOT NULL
);
"""


class Refused(Exception):
    """A payment the system refuses (the invoice is not open, or the amount is wrong)."""


class Invoice(BaseModel):
    invoice_id: str
    vendor: str
    amount: str
    status: str


class Payment(BaseModel):
    invoice_id: str
    amount: str
    idempotency_key: str


def path() -> Path:
    return Path(os.environ.get(DB_ENV) or Path(tempfile.gettempdir()) / "invoice_agent.sqlite3")


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path(), timeout=10, isolation_level=None)) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT OR IGNORE INTO invoices VALUES (?, ?, ?, ?)", SEED)
        yield db


def add(invoice_id: str, vendor: str, amount: str, status: str = "open") -> None:
    """Put an invoice into the system (for demos and tests)."""
    with _db() as db:
        db.execute(
            "INSERT OR REPLACE INTO invoices VALUES (?, ?, ?, ?)",
            (invoice_id, vendor, amount, status),
        )


def find(invoice_id: str) -> Invoice | None:
    with _db() as db:
        row = db.execute("SELECT * FROM invoices WHERE invoice_id = ?", (invoice_id,)).fetchone()
    return Invoice(invoice_id=row[0], vendor=row[1], amount=row[2], status=row[3]) if row else None


def pay(idempotency_key: str, invoice_id: str, amount: str) -> Payment:
    """Pay an open invoice its exact amount, once per idempotency key."""
    with _db() as db:
        db.execute("BEGIN IMMEDIATE")  # one payer at a time: check and pay in one transaction
        try:
            done = db.execute(
                "SELECT invoice_id, amount FROM payments WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            if done is None:
                _check(db, invoice_id, amount)
                db.execute(
                    "INSERT INTO payments VALUES (?, ?, ?)", (idempotency_key, invoice_id, amount)
                )
                db.execute(
                    "UPDATE invoices SET status = 'paid' WHERE invoice_id = ?", (invoice_id,)
                )
                done = (invoice_id, amount)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return Payment(invoice_id=done[0], amount=done[1], idempotency_key=idempotency_key)


def _check(db: sqlite3.Connection, invoice_id: str, amount: str) -> None:
    row = db.execute(
        "SELECT amount, status FROM invoices WHERE invoice_id = ?", (invoice_id,)
    ).fetchone()
    if row is None:
        raise Refused(f"no invoice {invoice_id!r}")
    if row[1] != "open":
        raise Refused(f"invoice {invoice_id} is {row[1]}, not open")
    if row[0] != amount:
        raise Refused(f"invoice {invoice_id} is for {row[0]}, not {amount}")


def payments(invoice_id: str | None = None) -> list[Payment]:
    """Every payment made (of one invoice, if given)."""
    with _db() as db:
        rows = db.execute(
            "SELECT idempotency_key, invoice_id, amount FROM payments"
            + (" WHERE invoice_id = ?" if invoice_id else ""),
            (invoice_id,) if invoice_id else (),
        ).fetchall()
    return [Payment(idempotency_key=k, invoice_id=i, amount=a) for k, i, a in rows]
