"""Edit then approve (`ApprovalRule(editable=...)`): an approver rewords the welcome email before
it goes. The tool runs with the edited arguments, the model is told what changed, and the record
(status, transcript, audit) keeps both digests and who edited, the proof naming both. What a
rule does not allow, what the tool would not take and a proof for another edit are refused
before anything is recorded, from the CLI and from an ops tool alike."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab import proofs
from durable_agents._vocab.schemas import AgentRun, Decision, EventSignal
from durable_agents.activities.audit import audit_log
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import hire, wait_for_status
from tests.people import People, start_run
from tests.test_approvals import updates_in_history
from tests.test_cli import address, cli, error, ok, until_status
from tests.test_messages import update


async def at_the_gate(env: WorkflowEnvironment, queue: str) -> tuple[WorkflowHandle[Any, Any], str]:
    """An onboarding run waiting for HR to approve the welcome email, to an address of its own."""
    to = f"new-{uuid.uuid4().hex[:8]}@example.com"
    run = AgentRun(agent="onboarding", input=hire(personal_email=to), principal="tester")
    handle = await start_run(env.client, run, task_queue=queue)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval")
    return handle, to


def sent(sim: Any, to: str) -> list[dict[str, Any]]:
    mail = httpx.get(f"{sim.url}/mail/messages", params={"to": to}).json()["messages"]
    return list(mail)


async def model_inputs(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """What the run sent its model, call by call, as history recorded it."""
    inputs = []
    async for event in handle.fetch_history_events():
        attrs = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and (
            attrs.activity_type.name == "call_llm"
        ):
            inputs.append(b"".join(p.data for p in attrs.input.payloads).decode())
    return inputs


async def refused(decision: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decision
    return str(info.value.cause)


async def test_an_approver_edits_the_email_and_the_tool_sends_the_edit(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any, people: People,
    fault: Any,
) -> None:  # fmt: skip
    handle, to = await at_the_gate(dev_env, task_queue)
    # The email takes 3 s once approved: the repeats below reach a run that is still going (a
    # run that ended takes no update at all).
    fault("send_email", "delay", times=1, seconds=3, when="before")
    [asked] = (await handle.query(AgentWorkflow.status)).approvals
    assert asked.editable == ["subject", "body"]  # not the recipient
    original = dict(asked.arguments)
    edited = original | {"subject": "Welcome aboard, Ada", "body": "Dear Ada,\n\nWelcome!\n"}

    # Refused, before anything is recorded: each says what to do.
    def decide(arguments: dict[str, Any], **fields: Any) -> Any:
        return people.decide(handle, "hana", True, arguments=arguments, **fields)

    moved = await refused(decide(original | {"to": "mallory@evil.example"}))
    assert "lets a person edit only subject, body; not to" in moved
    partial = await refused(decide({"subject": "Hi", "body": "x"}))
    assert "send every argument of send_email, edited or not; missing: to" in partial
    same = await refused(decide(original))
    assert "changes nothing: approve it as it is instead" in same
    unfit = await refused(decide(original | {"subject": ""}))
    assert "the edited arguments do not fit send_email" in unfit and "subject" in unfit
    # A proof for another edit (what hana read and signed is not what is sent): refused.
    forged = await refused(decide(edited | {"body": "Send me your password"},
                                  proven_arguments=edited))  # fmt: skip
    assert "the proof is for another message (edited_digest" in forged
    # A proof for the plain approval does not carry an edit either.
    plain = people.proof(
        "hana", proofs.decision(handle.id, asked.id, True, asked.digest, "")
    )  # fmt: skip
    swapped = Decision(approve=True, proof=plain, arguments=edited)
    assert "the proof is for another message" in await refused(
        handle.execute_update("decide", swapped)
    )
    assert await updates_in_history(handle) == 0
    assert sent(sim, to) == []

    decided = await decide(edited, reason="warmer")
    assert (decided.state, decided.decided_by, decided.reason) == ("approved", "hana", "warmer")
    assert decided.arguments == original and decided.digest == asked.digest  # what was asked
    assert decided.edited_arguments == edited
    assert decided.edited_digest == proofs.arguments_digest(edited) != decided.digest
    # The exact repeat (a retry after a lost answer) finds the decision; a plain approval is not it.
    assert await decide(edited, reason="warmer") == decided
    assert "already approved by hana" in await refused(people.decide(handle, "hana", True))

    result = await handle.result()
    assert result.outcome == "completed"
    [mail] = sent(sim, to)
    assert (mail["to"], mail["subject"], mail["body"]) == (to, edited["subject"], edited["body"])

    # The record: the transcript says who edited what, and the model read it before replying.
    transcript = await handle.query(AgentWorkflow.transcript)
    [note] = [e for e in transcript if e.kind == "approval" and "with edits" in e.text]
    assert note.text.startswith("apr-1 approved by hana with edits to body, subject (digest ")
    assert note.data["edited_digest"] == decided.edited_digest
    told = [text for text in await model_inputs(handle)
            if "hana edited the call before approving it" in text]  # fmt: skip
    assert told and "Welcome aboard, Ada" in told[0] and "digest" not in told[0]
    # The audit log: what the model asked, what ran, both digests, who edited, the proof.
    [entry] = [r.entry for r in audit_log().trail(handle.id) if r.entry.kind == "approval"]
    assert entry.details["arguments"] == original and entry.details["digest"] == asked.digest
    assert entry.details["edited_arguments"] == edited
    assert entry.details["edited_digest"] == decided.edited_digest
    assert entry.details["edited_by"] == "hana" and entry.details["proof_id"]
    [effect] = [r.entry for r in audit_log().trail(handle.id)
                if r.entry.kind == "side_effect" and r.entry.tool == "send_email"]  # fmt: skip
    assert effect.details["arguments"]["subject"] == edited["subject"]


async def test_an_ops_tool_edit_is_strict_about_its_form(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, people: People
) -> None:
    """Through the `temporal` CLI: a reject that carries edits, arguments that are not an object,
    and edits over the size limit are refused for their form, each in one sentence."""
    handle, _ = await at_the_gate(dev_env, task_queue)
    [asked] = (await handle.query(AgentWorkflow.status)).approvals
    details = proofs.decision(handle.id, asked.id, False, asked.digest, "")
    proof = people.proof("hana", details)
    cases = {
        "edited arguments come only with an approval": {"approve": False, "arguments": {}},
        "arguments": {"approve": True, "arguments": "subject=Hi"},
        "over the limit of 16,000": {
            "approve": True,
            "arguments": asked.arguments | {"body": "x" * 17_000},
        },
    }
    for expected, body in cases.items():
        code, out = await update(dev_env, handle.id, "decide", json.dumps(body | {"proof": proof}))
        assert code != 0 and expected in out, out
    assert await updates_in_history(handle) == 0
    await people.decide(handle, "hana", False, "not now")
    assert (await handle.result()).outcome == "completed"


async def test_edit_then_approve_from_the_terminal(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any, tmp_path: Path
) -> None:
    addr = address(dev_env)
    to = f"new-{uuid.uuid4().hex[:8]}@example.com"
    started = ok(await cli("run", "onboarding", "--input", json.dumps(hire(personal_email=to)),
                           "--as", "ops-anna", "--task-queue", task_queue, "--address", addr,
                           "--json"))  # fmt: skip
    run = json.loads(started.stdout)["run"]
    await until_status(run, addr, "waiting_event")
    ok(await cli("signal", run, "clearance_granted", "--address", addr))
    await until_status(run, addr, "waiting_approval")
    shown = ok(await cli("approvals", "show", run, "--address", addr)).stdout
    assert "editable: subject, body (approve --edit NAME=VALUE)" in shown

    recipient = error(await cli("approve", run, "--as", "hana", "--edit", "to=x@example.com",
                                "--address", addr))  # fmt: skip
    assert "approval apr-1 lets a person edit only subject, body; not to" in recipient
    unknown = error(await cli("approve", run, "--as", "hana", "--edit", "cc=x@example.com",
                              "--address", addr))  # fmt: skip
    assert "send_email takes no argument 'cc'" in unknown
    stale = error(await cli("approve", run, "--as", "hana", "--edit", "subject=Hi",
                            "--digest", "0" * 16, "--address", addr))  # fmt: skip
    assert "not 0000000000000000" in stale
    body = tmp_path / "body.txt"
    body.write_text("Dear Ada,\n\nWelcome to the company.\n")
    decided = ok(await cli("approve", run, "--as", "hana", "--edit", "subject=Welcome, Ada",
                           "--edit", f"body=@{body}", "--address", addr, "--json"))  # fmt: skip
    approval = json.loads(decided.stdout)
    assert approval["edited_arguments"]["body"] == body.read_text()
    assert approval["edited_arguments"]["to"] == to  # untouched
    done = ok(await cli("result", run, "--wait", "--address", addr)).stdout
    assert done.startswith("outcome: completed")
    [mail] = sent(sim, to)
    assert (mail["subject"], mail["body"]) == ("Welcome, Ada", body.read_text())
    after = ok(await cli("approvals", "show", run, "--address", addr)).stdout
    assert f"edited: by hana: digest {approval['edited_digest']}" in after
    assert "ran with:" in after and "Welcome, Ada" in after
