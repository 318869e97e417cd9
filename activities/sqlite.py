"""SQLite files shared by the worker processes of one machine (the message store, the audit log)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_shared(path: Path, *schema: str) -> sqlite3.Connection:
    """A connection in autocommit and WAL mode, waiting up to 10 s for another process's write;
    `schema` statements run once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    for statement in schema:
        db.execute(statement)
    return db
