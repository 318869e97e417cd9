"""The audit log: every side effect and every approval decision, append-only and hash-chained.

Each entry's hash covers the previous entry's hash and the entry itself, so changing, removing or
reordering any entry breaks the chain from there on (`agentctl audit --verify` finds where).
Entries are keyed: the idempotency key of a side effect, `<run>/<approval id>` of a decision; a
retried activity appends nothing new. The log lives outside Temporal's history, in SQLite
(`DURABLE_AGENTS_AUDIT_PATH`, by default `<state_dir>/audit.sqlite3`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from durable_agents._vocab.schemas import AuditEntry
from durable_agents.activities.sqlite import open_shared
from durable_agents.settings import current

GENESIS = "0" * 64


class Recorded(BaseModel):
    seq: int
    at: str
    entry: AuditEntry
    prev: str
    hash: str


def _digest(prev: str, at: str, entry: AuditEntry) -> str:
    body = json.dumps(
        {"prev": prev, "at": at, "entry": entry.model_dump(mode="json")},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Verdict:
    ok: bool
    entries: int
    broken_at: int | None = None  # the first entry whose hash does not hold
    problem: str = ""
    since: int = 0  # the chain is checked from the checkpoint after this entry (0: from the start)


@dataclass
class Pruned:
    entries: int  # how many were removed
    since: int  # the chain is verifiable from the checkpoint after this entry


class AuditBroken(RuntimeError):
    """The chain does not hold: nothing is pruned (what is left is the evidence)."""


# Retention: the entries pruned are gone, the hash of the last of them stays, so the chain is
# verifiable from there on.
CHECKPOINT = (
    "CREATE TABLE IF NOT EXISTS audit_checkpoint (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, "
    "hash TEXT NOT NULL, pruned_before TEXT NOT NULL, at TEXT NOT NULL)"
)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_shared(
            path,
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "key TEXT NOT NULL UNIQUE, run TEXT NOT NULL, at TEXT NOT NULL, "
            "entry TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS audit_run ON audit (run)",
            CHECKPOINT,
        )

    def append(self, entry: AuditEntry) -> Recorded:
        """Append once per key; a repeat returns the entry already there."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
            try:
                row = _append(self._db.execute, "?", entry)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return _recorded(row)

    def trail(self, run: str | None = None) -> list[Recorded]:
        query = "SELECT seq, at, entry, prev, hash FROM audit"
        args: tuple[str, ...] = ()
        if run is not None:
            query, args = query + " WHERE run = ? OR run LIKE ?", (run, f"{run}--%")
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [_recorded(r) for r in rows]

    def verify(self) -> Verdict:
        with self._lock:
            return _verify_from(self._db.execute)

    def prune(self, before: datetime) -> Pruned:
        """Remove the entries written before `before`, keeping a checkpoint."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                pruned = _prune(self._db.execute, "?", before)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return pruned


def _verify_from(execute: Callable[..., Any]) -> Verdict:
    """The chain checked from its checkpoint (if entries were pruned), else from the start."""
    checkpoint = execute("SELECT seq, hash FROM audit_checkpoint WHERE id = 1").fetchone()
    rows = execute("SELECT seq, at, entry, prev, hash FROM audit ORDER BY seq").fetchall()
    verdict = _verify(rows, checkpoint[1] if checkpoint else GENESIS)
    verdict.since = checkpoint[0] if checkpoint else 0
    return verdict


def _prune(execute: Callable[..., Any], mark: str, before: datetime) -> Pruned:
    """In the writer's transaction: check the chain (a broken one is evidence: nothing goes),
    remove the entries up to the last one written before `before`, and record its hash."""
    verdict = _verify_from(execute)
    if not verdict.ok:
        raise AuditBroken(
            f"the chain is broken at entry #{verdict.broken_at} ({verdict.problem}): nothing pruned"
        )
    cutoff = before.astimezone(UTC).isoformat()
    last = execute(
        f"SELECT seq, hash FROM audit WHERE at < {mark} ORDER BY seq DESC LIMIT 1", (cutoff,)
    ).fetchone()
    if last is None:
        return Pruned(0, verdict.since)
    gone = execute(f"DELETE FROM audit WHERE seq <= {mark}", (last[0],)).rowcount
    marks = ", ".join([mark] * 4)
    execute(
        f"INSERT INTO audit_checkpoint (id, seq, hash, pruned_before, at) VALUES (1, {marks}) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
        "pruned_before = excluded.pruned_before, at = excluded.at",
        (last[0], last[1], cutoff, datetime.now(UTC).isoformat()),
    )
    return Pruned(gone, last[0])


def _append(execute: Callable[..., Any], mark: str, entry: AuditEntry) -> tuple[Any, ...]:
    """Inside the writer's transaction (one writer at a time): the entry already there for its
    key, or the entry chained after the last one. `mark` is the driver's parameter mark."""
    columns = "seq, at, entry, prev, hash"
    row = execute(f"SELECT {columns} FROM audit WHERE key = {mark}", (entry.key,)).fetchone()
    if row is not None:
        return tuple(row)
    last = execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    at = datetime.now(UTC).isoformat()
    marks = ", ".join([mark] * 6)
    row = execute(
        f"INSERT INTO audit (key, run, at, entry, prev, hash) VALUES ({marks}) RETURNING {columns}",
        (entry.key, entry.run, at, entry.model_dump_json(), prev, _digest(prev, at, entry)),
    ).fetchone()
    return tuple(row)


def _verify(rows: Iterable[tuple[Any, ...]], start: str = GENESIS) -> Verdict:
    """Walk the chain from `start` (the genesis, or a checkpoint's hash): each entry's `prev`
    is the hash before it, and its hash covers it."""
    prev, count = start, 0
    for seq, at, body, stored_prev, stored_hash in rows:
        count += 1
        if stored_prev != prev:
            return Verdict(False, count, seq, "an entry before it was removed or changed")
        try:
            entry = AuditEntry.model_validate_json(body)
        except ValueError:
            return Verdict(False, count, seq, "the entry is not readable")
        if _digest(prev, at, entry) != stored_hash:
            return Verdict(False, count, seq, "the entry was changed after it was written")
        prev = stored_hash
    return Verdict(True, count)


class PostgresAuditLog:
    """The same hash-chained log in PostgreSQL (`DURABLE_AGENTS_AUDIT_URL=postgresql://…`): one
    log for workers on many machines. Writers take one transaction-scoped advisory lock, so the
    chain stays linear however many append at once; a key already there is returned as it is."""

    # The advisory lock every writer of the chain takes (an arbitrary constant: "audit").
    LOCK = 0x61756474

    def __init__(self, url: str) -> None:
        import psycopg

        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=False)
        with self._db.transaction():
            # CREATE ... IF NOT EXISTS is not safe against a second worker doing the same at
            # the same moment (a unique violation in pg_class): the writers' lock orders them.
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK,))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS audit (seq BIGSERIAL PRIMARY KEY, "
                "key TEXT NOT NULL UNIQUE, run TEXT NOT NULL, at TEXT NOT NULL, "
                "entry TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS audit_run ON audit (run)")
            self._db.execute(CHECKPOINT)
        self._db.commit()

    def append(self, entry: AuditEntry) -> Recorded:
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK,))
            row = _append(self._db.execute, "%s", entry)
        return _recorded(row)

    def trail(self, run: str | None = None) -> list[Recorded]:
        query = "SELECT seq, at, entry, prev, hash FROM audit"
        args: tuple[str, ...] = ()
        if run is not None:
            query, args = query + " WHERE run = %s OR run LIKE %s", (run, f"{run}--%")
        with self._lock, self._db.transaction():
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [_recorded(r) for r in rows]

    def verify(self) -> Verdict:
        with self._lock, self._db.transaction():
            return _verify_from(self._db.execute)

    def prune(self, before: datetime) -> Pruned:
        """Remove the entries written before `before`, keeping a checkpoint."""
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK,))
            return _prune(self._db.execute, "%s", before)


def _recorded(row: tuple[Any, ...]) -> Recorded:
    seq, at, body, prev, digest = row
    return Recorded(
        seq=seq, at=at, entry=AuditEntry.model_validate_json(body), prev=prev, hash=digest
    )


def audit_path() -> Path:
    settings = current()
    return settings.audit_path or settings.state_dir / "audit.sqlite3"


@lru_cache(maxsize=4)
def _open(path: Path) -> AuditLog:
    return AuditLog(path)


@lru_cache(maxsize=4)
def _open_postgres(url: str) -> PostgresAuditLog:
    return PostgresAuditLog(url)


def audit_log() -> AuditLog | PostgresAuditLog:
    """The worker's audit log: PostgreSQL when DURABLE_AGENTS_AUDIT_URL names one (one log for
    many machines), else the embedded SQLite file."""
    url = current().audit_url
    if url:
        return _open_postgres(url.get_secret_value())
    return _open(audit_path().resolve())


@activity.defn
async def record_audit(entry: AuditEntry) -> int:
    """Append an entry (an approval decision; side effects are recorded by `run_tool`)."""
    return audit_log().append(entry).seq
