"""Identity and delegated authority (scopes), and the hash-chained audit log."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from durable_agents._discovery import discover
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import AgentRun, AuditEntry, Identity, ToolRequest
from durable_agents.activities.audit import AuditLog, audit_log
from durable_agents.activities.tools import ToolRunner
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.state import RunState
from durable_agents.workflows.subagents import narrowed
from sim import settings as sim_settings
from tests.helpers import SimTokens, approve_pending, wait_for_status
from tests.people import start_run
from tests.test_cli import cli, invoke, ok


def identity(run: str, scopes: list[str]) -> Identity:
    return Identity(
        agent="onboarding",
        agent_version="1.0.0",
        workflow_id=run,
        principal="hana",
        scopes=scopes,
    )


def laptop(run: str, scopes: list[str]) -> ToolRequest:
    return ToolRequest(
        tool="order_laptop",
        arguments={"employee_id": "E-1", "model": "ThinkPad X1", "ship_to": "Berlin"},
        idempotency_key=f"{run}/call_1",
        identity=identity(run, scopes),
    )


async def test_a_tool_outside_the_grant_is_refused_before_it_runs(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, ledger: Any
) -> None:
    run = AgentRun(
        agent="reader", input={"turns": 2, "email_at": 1}, principal="tester", scopes=["wiki:read"]
    )
    handle = await start_run(dev_env.client, run, f"narrow-{uuid.uuid4().hex[:6]}", task_queue)
    result = await handle.result()
    assert result.answer == "read 2 documents: 4000 characters in full, 0 previews, 0 errors"
    errors = [e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "error"]
    assert errors == [
        "PermissionDenied: send_email needs scope mail:send, which this run was not granted "
        "(granted: wiki:read); ask the person you act for"
    ]
    assert (await handle.query(AgentWorkflow.status)).approvals == []  # nobody was asked
    assert ledger(handle.id, "send_email") == 0


async def test_run_tool_itself_refuses_a_scope_that_was_not_granted(sim: Any) -> None:
    run = f"direct-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(ToolRunner(discover()).run_tool, laptop(run, ["hr:write"]))
    assert err.value.type == f.PERMISSION_DENIED and err.value.non_retryable
    assert "order_laptop needs scope it:write" in err.value.message
    [entry] = audit_log().trail(run)
    assert entry.entry.kind == "refused" and entry.entry.outcome == f.PERMISSION_DENIED


def test_sub_agents_get_at_most_their_parents_scopes() -> None:
    parent = RunState(scopes=["wiki:read", "mail:send"])
    run = AgentRun(agent="research")
    assert narrowed(parent, run, None) == ["wiki:read", "mail:send"]
    assert narrowed(parent, run, ["mail:send", "payments:refund"]) == ["mail:send"]
    assert narrowed(RunState(scopes=[]), run, ["mail:send"]) == []


def test_unknown_scopes_are_refused_before_anything_starts() -> None:
    result = invoke("run", "reader", "--as", "tester", "--scope", "wiki:read", "--scope", "root")
    assert result.exit_code == 1
    assert "unknown scope 'root'" in result.stderr and "wiki:read" in result.stderr


async def test_a_retried_side_effect_is_audited_once(sim: Any, people: Any) -> None:
    run = f"retried-{uuid.uuid4().hex[:6]}"
    people.grant("hana", "onboarding", ["it:write"])  # hana lets the agent order for her
    first = await ActivityEnvironment().run(
        ToolRunner(discover()).run_tool, laptop(run, ["it:write"])
    )
    again = await ActivityEnvironment().run(
        ToolRunner(discover()).run_tool, laptop(run, ["it:write"])
    )
    assert first.output == again.output  # the system saw the same idempotency key
    [entry] = audit_log().trail(run)
    assert entry.entry.key == f"{run}/call_1" and entry.entry.kind == "side_effect"
    assert entry.entry.principal == "hana" and entry.entry.scopes == ["it:write"]
    assert audit_log().verify().ok


async def test_the_audit_trail_of_a_run_names_the_effect_the_grant_and_the_approver(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any
) -> None:
    run = AgentRun(agent="reader", input={"turns": 1, "email_at": 1}, principal="tester")
    handle = await start_run(dev_env.client, run, f"audited-{uuid.uuid4().hex[:6]}", task_queue)
    await wait_for_status(handle, "waiting_approval")
    await approve_pending(handle, approver="olga")
    await handle.result()
    trail = [r.entry for r in audit_log().trail(handle.id)]
    assert [(e.kind, e.tool, e.outcome, e.approver) for e in trail] == [
        ("approval", "send_email", "approved", "olga"),
        ("side_effect", "send_email", "ok", None),
    ]
    effect = trail[1]
    assert effect.key.startswith(f"{handle.id}/") and effect.principal == "tester"
    assert effect.scopes == ["mail:send", "wiki:read"] and effect.side_effect == "irreversible"
    shown = ok(await cli("audit", handle.id)).stdout
    assert "approval apr-1 of send_email: approved by olga" in shown
    assert "send_email [irreversible] side effect: ok" in shown
    assert "audit log" in ok(await cli("audit", "--verify")).stdout

    # The system recorded who acted for whom from the token it accepted, not from the caller.
    [made] = httpx.get(f"{sim.url}/ledger", params={"run": handle.id}).json()["entries"]
    assert (made["agent"], made["principal"], made["scope"]) == ("reader", "tester", "mail:send")
    assert made["token_id"] == made["idempotency_key"] == effect.key

    # The systems' own record agrees with the audit trail ...
    agreed = ok(await cli("audit", handle.id, "--against-systems")).stdout
    assert "1 effects agree; 0 only in the audit trail, 0 only in the systems' record" in agreed
    # ... until an effect is made past the agent (a rogue caller with the run's key prefix) and
    # one is audited that no system made: each is named, and the command fails.
    rogue_auth = SimTokens(sim.url, sim.credentials)  # another agent's credentials
    async with httpx.AsyncClient(
        base_url=sim_settings.current().company_base_url, auth=rogue_auth
    ) as http:
        rogue = await http.post(
            "/mail/messages",
            json={"to": "x@example.com", "subject": "hi", "body": "not from the agent"},
            headers={"Idempotency-Key": f"{handle.id}/rogue"},
        )
        assert rogue.status_code < 300, rogue.text
        # An effect the trail puts in the run's name that another agent's token made.
        impostor = f"{handle.id}/impostor"
        made = await http.post(
            "/mail/messages",
            json={"to": "y@example.com", "subject": "hi", "body": "not the reader"},
            headers={"Idempotency-Key": impostor},
        )
        assert made.status_code < 300, made.text
    audit_log().append(
        AuditEntry(key=f"{handle.id}/phantom", kind="side_effect", run=handle.id, tool="pay")
    )
    audit_log().append(effect.model_copy(update={"key": impostor}))
    differ = await cli("audit", handle.id, "--against-systems")
    assert differ.exit_code == 1, differ.stdout
    assert f"recorded by a system, not in the audit trail: {handle.id}/rogue (send_email)" in (
        differ.stdout
    )
    assert f"in the audit trail, not recorded by any system: {handle.id}/phantom (pay)" in (
        differ.stdout
    )
    assert (
        f"{impostor} (send_email): the audit trail says reader for tester, the token the system "
        "accepted says onboarding for tester" in differ.stdout
    )
    assert (
        "1 effects agree; 1 only in the audit trail, 1 only in the systems' record; 1 made by "
        "someone else" in differ.stdout
    )


def test_tampering_breaks_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog(path)
    for i in range(3):
        log.append(AuditEntry(key=f"r/{i}", kind="side_effect", run="r", outcome="ok"))
    assert log.append(AuditEntry(key="r/1", kind="side_effect", run="r")).seq == 2  # once
    assert log.verify().ok and log.verify().entries == 3
    with sqlite3.connect(path) as db:
        [original] = db.execute("SELECT entry FROM audit WHERE seq = 2").fetchone()
        db.execute("UPDATE audit SET entry = ? WHERE seq = 2", (original.replace('"ok"', '"no"'),))
    verdict = log.verify()
    assert not verdict.ok and verdict.broken_at == 2
    monkeypatch.setenv("DURABLE_AGENTS_AUDIT_PATH", str(path))

    try:
        result = invoke("audit", "--verify")
    finally:
        monkeypatch.undo()
    assert result.exit_code == 1 and "broken at entry #2" in result.stderr
    with sqlite3.connect(path) as db:  # put it back, then remove the first entry instead
        db.execute("UPDATE audit SET entry = ? WHERE seq = 2", (original,))
        db.commit()
        assert log.verify().ok
        db.execute("DELETE FROM audit WHERE seq = 1")
    assert log.verify().broken_at == 2
