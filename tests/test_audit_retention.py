"""Retention: `agentctl audit prune --before DATE` removes old entries and keeps a checkpoint, so
the chain stays verifiable from there, in SQLite and in PostgreSQL alike; a broken chain is
never pruned (what is left is the evidence)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from durable_agents._vocab.schemas import AuditEntry
from durable_agents.activities.audit import AuditLog, PostgresAuditLog
from tests.postgres import postgres

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment that points agentctl at a fresh log of either kind."""
    if request.param == "sqlite":
        return {"DURABLE_AGENTS_AUDIT_PATH": str(tmp_path / "audit.sqlite3")}
    url: str = request.getfixturevalue("pg_url")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS audit, audit_checkpoint")
    return {"DURABLE_AGENTS_AUDIT_URL": url}


def opened(env: dict[str, str]) -> AuditLog | PostgresAuditLog:
    if "DURABLE_AGENTS_AUDIT_URL" in env:
        return PostgresAuditLog(env["DURABLE_AGENTS_AUDIT_URL"])
    return AuditLog(Path(env["DURABLE_AGENTS_AUDIT_PATH"]))


def agentctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTCTL, "audit", *args], env=os.environ | env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def entry(i: int) -> AuditEntry:
    return AuditEntry(key=f"run-1/call-{i}", kind="side_effect", run="run-1", outcome="ok")


def test_pruning_keeps_the_chain_verifiable_from_a_checkpoint(backend: dict[str, str]) -> None:
    log = opened(backend)
    for i in range(5):
        log.append(entry(i))
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    for i in range(5, 8):
        log.append(entry(i))

    pruned = agentctl(backend, "prune", "--before", cutoff.isoformat())
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "pruned 5 entries" in pruned.stdout
    assert "verifiable from the checkpoint after entry #5" in pruned.stdout
    verified = agentctl(backend, "--verify")
    assert verified.returncode == 0, verified.stderr
    assert "3 entries, the hash chain holds from the checkpoint after entry #5" in verified.stdout
    assert [r.entry.key for r in opened(backend).trail("run-1")] == [
        f"run-1/call-{i}" for i in (5, 6, 7)
    ]
    again = agentctl(backend, "prune", "--before", cutoff.isoformat())
    assert "nothing pruned" in again.stdout

    # The chain goes on from the checkpoint; an entry changed after it is still found.
    opened(backend).append(entry(8))
    _tamper(backend, seq=7)
    broken = agentctl(backend, "--verify")
    assert broken.returncode == 1 and "broken at entry #7" in broken.stderr, broken.stderr
    # A broken chain is never pruned: it is the evidence.
    refused = agentctl(backend, "prune", "--before", datetime.now(UTC).isoformat())
    assert refused.returncode == 1 and "nothing pruned" in refused.stderr, refused.stderr
    assert len(opened(backend).trail()) == 4


def test_a_date_that_is_not_one_is_refused(backend: dict[str, str]) -> None:
    opened(backend).append(entry(0))
    out = agentctl(backend, "prune", "--before", "last tuesday")
    assert out.returncode == 1 and "is not an ISO date" in out.stderr
    out = agentctl(backend, "prune")
    assert out.returncode == 1 and "--before 2026-01-01" in out.stderr


def _tamper(env: dict[str, str], seq: int) -> None:
    sql = "UPDATE audit SET entry = replace(entry, 'ok', 'no') WHERE seq = "
    if "DURABLE_AGENTS_AUDIT_URL" in env:
        with psycopg.connect(env["DURABLE_AGENTS_AUDIT_URL"], autocommit=True) as db:
            db.execute(sql + str(seq))
    else:
        with sqlite3.connect(env["DURABLE_AGENTS_AUDIT_PATH"]) as db:
            db.execute(sql + str(seq))
