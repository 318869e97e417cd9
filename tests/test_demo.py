"""`agentctl demo` end to end, as `make demo` runs it: dev server, sim, worker, a run with an
approval, and the record (the systems' ledger with who acted for whom, the audit log)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_runs_an_agent_with_an_approval_and_shows_the_record(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_AGENTS_")}
    env |= {"DURABLE_AGENTS_STATE_DIR": str(tmp_path), "DURABLE_AGENTS_TRACING": "off"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "agentctl"), "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, (out[-3000:], done.stderr[-3000:])
    # hr-demo signs in and starts the run with her proof: it acts for her, within her grant.
    assert "signed in as hr-demo, as the identity provider proves it" in out
    assert "the run acts for hr-demo, proven by the start proof" in out
    # hana signs in on the provider's pages, and her decision carries her proof.
    assert "hana (hr-managers) signs in: agentctl login" in out
    assert "To sign in, open http://127.0.0.1:" in out
    assert "signed in as hana, as the identity provider proves it" in out
    assert "apr-1 approved by hana at " in out
    assert "(proof " in out and " from urn:durable-agents:sim:idp, checked by the worker)" in out
    assert "sim ledger for this run: create_mailbox=1, order_laptop=1, send_email=1" in out
    for action, scope in (("create_mailbox", "hr:write"), ("send_email", "mail:send")):
        assert f"{action}: agent onboarding for hr-demo, scope {scope}, token onboarding-" in out
    assert "hash chain holds" in out
    for secret in ("credentials.toml", "people.toml", "idp-admin.secret", "demo-signin.json"):
        assert (tmp_path / secret).stat().st_mode & 0o077 == 0, secret  # the owner's only
