"""One audit log for many machines: the hash-chained log in a real PostgreSQL server, written by
several processes at once, stays one linear chain that `agentctl audit --verify` checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.postgres import postgres

AGENTCTL = str(Path(sys.executable).parent / "agentctl")
ROOT = Path(__file__).parent.parent
WRITER = """
import sys
from durable_agents.activities.audit import audit_log
from durable_agents._vocab.schemas import AuditEntry
me = sys.argv[1]
for i in range(int(sys.argv[2])):
    audit_log().append(AuditEntry(key=f"{me}/{i}", kind="side_effect", run=f"run-{me}",
                                  tool="pay", outcome="ok"))
    audit_log().append(AuditEntry(key="shared/once", kind="approval", run="run-shared"))
"""


@pytest.fixture(scope="module")
def audit_url() -> Iterator[str]:
    with postgres() as url:
        yield url


def agentctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTCTL, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_workers_on_two_machines_append_to_one_linear_chain(audit_url: str, tmp_path: Path) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, "60"],
            cwd=ROOT,
            env=os.environ
            | {
                "DURABLE_AGENTS_AUDIT_URL": audit_url,
                # Each its own machine: nothing shared but the database.
                "DURABLE_AGENTS_STATE_DIR": str(tmp_path / name),
            },
        )
        for name in ("worker-a", "worker-b")
    ]
    assert [w.wait(120) for w in writers] == [0, 0]
    env = os.environ | {"DURABLE_AGENTS_AUDIT_URL": audit_url}
    verified = agentctl(env, "audit", "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "121 entries, the hash chain holds" in verified.stdout  # 2 x 60, and one shared key
    with psycopg.connect(audit_url) as db:
        writers_seen = db.execute(
            "SELECT count(DISTINCT run) FROM audit WHERE run LIKE 'run-worker-%'"
        ).fetchone()
    assert writers_seen == (2,)
    trail = agentctl(env, "audit", "run-worker-a")
    assert trail.returncode == 0 and trail.stdout.count("pay") == 60, trail.stdout

    # Tampering with one entry breaks the chain from there, and --verify says where.
    with psycopg.connect(audit_url) as db:
        db.execute("UPDATE audit SET entry = replace(entry, 'ok', 'no') WHERE seq = 7")
    broken = agentctl(env, "audit", "--verify")
    assert broken.returncode == 1 and "broken at entry #7" in broken.stderr, broken.stderr
    assert "postgresql://" not in broken.stderr + verified.stdout  # the URL is never shown


def test_an_unreachable_database_is_one_line() -> None:
    env = os.environ | {"DURABLE_AGENTS_AUDIT_URL": "postgresql://nobody@127.0.0.1:1/none"}
    out = agentctl(env, "audit", "--verify")
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: cannot open the audit log in PostgreSQL: OperationalError")
