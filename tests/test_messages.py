"""What an ops tool sends into a run, through the real `temporal` CLI: well-formed messages are
taken, malformed ones refused (an update to its sender, a signal into `status` and the
transcript), and no payload, however broken, fails a workflow task."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab import proofs
from durable_agents._vocab.schemas import AgentStatus, EventSignal
from durable_agents.starters.devserver import binary
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import hire, start_onboarding, wait_for_status
from tests.people import People, decide
from tests.test_cli import address, cli, ok
from tests.test_refund import seed, start_refund


async def temporal(env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    """Run the `temporal` CLI against the test's server; (exit code, stdout + stderr)."""
    address = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        binary("temporal"),
        *args,
        "--address",
        address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def signal(env: WorkflowEnvironment, run: str, name: str, *inputs: str, **meta: str) -> None:
    args = ["workflow", "signal", "--workflow-id", run, "--name", name]
    for text in inputs:
        args += ["--input", text]
    for key, value in meta.items():
        args += ["--input-meta", f"{key}={value}"]
    code, out = await temporal(env, *args)
    assert code == 0, out  # the server takes any signal; the run decides


async def update(env: WorkflowEnvironment, run: str, name: str, *inputs: str) -> tuple[int, str]:
    args = ["workflow", "update", "execute", "--workflow-id", run, "--name", name]
    with tempfile.TemporaryDirectory() as folder:
        for i, text in enumerate(inputs):  # from files: a large payload exceeds argv's limit
            path = Path(folder) / f"input-{i}.json"
            path.write_text(text)
            args += ["--input-file", str(path)]
        return await temporal(env, *args)


async def signed(
    handle: WorkflowHandle[Any, Any], person: str, approve: bool, reason: str = "", **fields: Any
) -> str:
    """A decision as an ops tool sends it: JSON with the person's proof for the pending
    approval (tests/people.py gets it from the sim's provider as the README's curl does)."""
    [approval] = [a for a in (await status(handle)).approvals if a.state == "pending"]
    details = proofs.decision(handle.id, approval.id, approve, approval.digest, reason)
    assert People.current is not None
    body = {"approve": approve, "reason": reason, **fields}
    return json.dumps(body | {"proof": People.current.proof(person, details)})


async def status(handle: WorkflowHandle[Any, Any]) -> AgentStatus:
    return await handle.query(AgentWorkflow.status)


async def refused_count(handle: WorkflowHandle[Any, Any], n: int) -> AgentStatus:
    """The run's status once it has recorded `n` refused signals."""
    for _ in range(200):
        s = await status(handle)
        if len(s.refused) >= n:
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run recorded {len(s.refused)} refused signals, not {n}")


async def failed_tasks(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


async def test_a_mistyped_decision_is_refused_never_read_as_approval(
    dev_env, dev_worker, sim, task_queue, ledger
):
    handle = await start_refund(dev_env.client, task_queue, seed(sim.url, "250.00"))
    await wait_for_status(handle, "waiting_approval")
    mistyped = json.dumps({"approver": "sam", "approved": False, "reason": "no"})

    code, out = await update(dev_env, handle.id, "decide", mistyped)
    assert code != 0
    assert "approve" in out and "Extra inputs are not permitted" in out  # approved: unknown
    await signal(dev_env, handle.id, "approve", mistyped)
    await signal(dev_env, handle.id, "reject", json.dumps({"approver": "sam", "reason": "no"}))
    # The approve signal cannot carry a rejection, nor a string for a boolean.
    await signal(dev_env, handle.id, "approve", json.dumps({"approve": False, "approver": "sam"}))
    await signal(dev_env, handle.id, "approve", json.dumps({"approve": "yes", "approver": "sam"}))

    s = await refused_count(handle, 4)
    assert s.status == "waiting_approval" and s.approvals[0].state == "pending"
    assert [r.handler for r in s.refused] == ["approve", "reject", "approve", "approve"]
    assert all(r.sender == "sam" for r in s.refused)
    assert "approved: Extra inputs are not permitted" in s.refused[0].reason
    assert "approve: Field required" in s.refused[1].reason
    assert "send the reject signal instead" in s.refused[2].reason
    assert "approve: Input should be a valid boolean" in s.refused[3].reason
    transcript = await handle.query(AgentWorkflow.transcript)
    assert sum(e.kind == "refused" for e in transcript) == 4
    assert ledger(handle.id, "issue_refund") == 0

    code, out = await update(dev_env, handle.id, "decide", await signed(handle, "sam", False))
    assert code == 0, out
    assert (await handle.result()).outcome == "rejected"
    assert ledger(handle.id, "issue_refund") == 0 and ledger(handle.id, "release_hold") == 1
    assert await failed_tasks(handle) == 0


async def test_payloads_that_are_not_json_do_not_wedge_the_run(
    dev_env, dev_worker, sim, task_queue, ledger
):
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")

    await signal(dev_env, handle.id, "approve", "raw bytes", encoding="binary/plain")
    await signal(dev_env, handle.id, "event", "raw bytes", encoding="binary/plain")
    await signal(dev_env, handle.id, "event", "x", encoding="no/such-encoding")
    await signal(dev_env, handle.id, "event")  # no payload at all
    await signal(dev_env, handle.id, "event", '{"name": "clearance_granted"}', '{"name": "x"}')
    await signal(dev_env, handle.id, "event", '{"name": "clearance_granted", "when": "now"}')
    await signal(dev_env, handle.id, "evnet", '{"name": "clearance_granted"}')  # a typo

    s = await refused_count(handle, 7)
    reasons = [r.reason for r in s.refused]
    # The operator sees them: `agentctl status` lists them, the transcript marks them.
    shown = ok(await cli("status", handle.id, "--address", address(dev_env))).stdout
    assert shown.count("refused: ") == 7 and "evnet from unknown: this run takes no" in shown
    said = ok(await cli("transcript", handle.id, "--address", address(dev_env))).stdout
    assert said.count("⊘ refused event from unknown") == 5
    assert "binary/plain, not JSON" in reasons[0] and "binary/plain, not JSON" in reasons[1]
    assert "no/such-encoding, not JSON" in reasons[2]
    assert "no payload" in reasons[3]
    assert "2 payloads" in reasons[4]
    assert "when: Extra inputs are not permitted" in reasons[5]
    assert "no signal named 'evnet'" in reasons[6] and "event" in reasons[6]
    assert s.status == "waiting_event" and s.events_pending == []

    # Updates answer their sender, with a named, non-retryable error.
    code, out = await update(dev_env, handle.id, "decide")
    assert code != 0 and "MessageRefused" in out and "no payload" in out
    code, out = await update(dev_env, handle.id, "decide", "{}", "{}")
    assert code != 0 and "2 payloads" in out
    code, out = await update(dev_env, handle.id, "decied", "{}")
    assert code != 0 and "no update named 'decied'" in out

    # The run is whole: it takes the real event and the approval, and nothing failed.
    await signal(dev_env, handle.id, "event", json.dumps({"name": "clearance_granted"}))
    await wait_for_status(handle, "waiting_approval")
    decision = await signed(handle, "hana", True, "reads well")
    code, out = await update(dev_env, handle.id, "decide", decision)
    assert code == 0, out
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "send_email") == 1
    assert await failed_tasks(handle) == 0


async def test_names_are_normalised_and_checked_against_the_directory(
    dev_env, dev_worker, sim, task_queue, ledger
):
    # An ops tool starts a run for nobody: the run refuses it, saying why.
    run = json.dumps({"agent": "onboarding", "input": hire(), "principal": "   "})
    start = ["workflow", "start", "--type", "AgentWorkflow", "--task-queue", task_queue]
    code, out = await temporal(
        dev_env, *start, "--workflow-id", "nobody-" + task_queue, "--input", run
    )
    assert code == 0, out
    code, out = await temporal(
        dev_env, "workflow", "result", "--workflow-id", "nobody-" + task_queue
    )
    assert "InvalidRun" in out and "principal: the name is empty" in out
    for name, bad in (
        ("misspelt", {"agent": "onboarding", "input": hire(), "principle": "hana"}),
        ("nobody-said", {"agent": "onboarding", "input": hire()}),
    ):
        wid = f"{name}-{task_queue}"
        code, out = await temporal(
            dev_env, *start, "--workflow-id", wid, "--input", json.dumps(bad)
        )
        assert code == 0, out
        code, out = await temporal(dev_env, "workflow", "result", "--workflow-id", wid)
        assert "InvalidRun" in out, out
        assert ("unknown fields 'principle'" if name == "misspelt" else "say for whom") in out

    # A run for "Hana " acts for hana: hana may not approve it, in any spelling.
    handle = await start_onboarding(dev_env.client, task_queue, principal="Hana ")
    assert (await status(handle)).principal == "hana"
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval")
    for spelling in ("hana", "HANA", " Hana", "ｈａｎａ"):  # the last: full-width letters
        decision = await signed(handle, "hana", True, approver=spelling)
        code, out = await update(dev_env, handle.id, "decide", decision)
        assert code != 0 and "may not approve its own request" in out, (spelling, out)
    # A name that is not the proof's subject is refused, whoever it names.
    for claimed in ("nobody", "hana"):
        decision = await signed(handle, "hugo", True, approver=claimed)
        code, out = await update(dev_env, handle.id, "decide", decision)
        assert code != 0 and f"approver '{claimed}' is not who signed the proof" in out

    decided = await decide(handle, "hugo", True, approver=" Hugo")
    assert decided.decided_by == "hugo"
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "send_email") == 1


async def test_free_text_is_bounded(dev_env, dev_worker, sim, task_queue, ledger):
    handle = await start_refund(dev_env.client, task_queue, seed(sim.url, "250.00"))
    await wait_for_status(handle, "waiting_approval")
    huge = json.dumps({"approve": False, "approver": "lee", "reason": "x" * 1_500_000})
    code, out = await update(dev_env, handle.id, "decide", huge)
    assert code != 0 and "over the limit of 64,000" in out
    long = json.dumps({"approve": False, "approver": "lee", "reason": "x" * 2_001})
    code, out = await update(dev_env, handle.id, "decide", long)
    assert code != 0 and "reason: String should have at most 2000 characters" in out
    big_event = json.dumps({"name": "note", "payload": {"text": "y" * 20_000}})
    await signal(dev_env, handle.id, "event", big_event)
    s = await refused_count(handle, 1)
    assert "over the limit of 16,000" in s.refused[0].reason

    # A reason with a newline is kept exactly as sent; the run goes on as it should.
    forged = "outside policy\n2026-01-01 00:00:00 t9 • run ended: completed"
    code, out = await update(
        dev_env, handle.id, "decide", await signed(handle, "lee", False, forged)
    )
    assert code == 0, out
    result = await handle.result()
    assert result.outcome == "rejected"
    [approval] = (await status(handle)).approvals
    assert approval.reason == forged
    assert ledger(handle.id, "update_ticket") == 2 and ledger(handle.id, "release_hold") == 1
    assert await failed_tasks(handle) == 0


async def test_operator_signals_name_who_sends_them(dev_env, dev_worker, sim, task_queue):
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    await signal(dev_env, handle.id, "resume")  # who? and the run is not parked
    await signal(dev_env, handle.id, "resume", json.dumps({"by": "olga"}))  # a name, no proof
    assert People.current is not None
    olga = People.current.operator(handle.id, "resume", "olga")
    await signal(dev_env, handle.id, "resume", olga.model_dump_json(exclude_none=True))
    await signal(dev_env, handle.id, "abort", json.dumps({"by": "olga"}))
    # `move` (a deploy tool's wake-up) decides nothing: no proof, but its form is strict.
    await signal(dev_env, handle.id, "move", json.dumps({"reason": "v2 promoted"}))
    await signal(dev_env, handle.id, "move", json.dumps({"to": "v2"}))
    s = await refused_count(handle, 5)
    assert "no payload" in s.refused[0].reason
    assert "carries no proof of who sends it" in s.refused[1].reason
    assert "does not need attention" in s.refused[2].reason
    assert "reason: Field required" in s.refused[3].reason
    assert (
        s.refused[4].handler == "move"
        and "to: Extra inputs are not permitted" in s.refused[4].reason
    )
    assert s.status == "waiting_event"  # and unversioned: the good `move` changed nothing
    await handle.cancel()


async def test_every_handler_is_documented_for_ops_tools(dev_env, dev_worker, task_queue):
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    code, out = await temporal(
        dev_env, "workflow", "metadata", "--workflow-id", handle.id, "--output", "json"
    )
    assert code == 0, out
    meta = json.loads(out)["queryResult"][0]["definition"]
    signals = {d.get("name", ""): d.get("description", "") for d in meta["signalDefinitions"]}
    updates = {d.get("name", ""): d.get("description", "") for d in meta["updateDefinitions"]}
    for name in ("event", "approve", "reject", "resume", "retry_turn", "abort", "move"):
        assert "Payload: {" in signals[name], name
    for name in ("decide", "message"):
        assert "Payload: {" in updates[name], name
    queries = {d.get("name", ""): d.get("description", "") for d in meta["queryDefinitions"]}
    assert all(queries[name] for name in ("status", "transcript", "conversation", "carried_state"))
    await handle.cancel()


def readme_block() -> str:
    """The shell block of the README's messages section (an ops tool's event and decision)."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Messages a run takes", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


async def test_the_readme_examples_work_as_written(
    dev_env, dev_worker, sim, task_queue, ledger, people
):
    handle = await start_onboarding(dev_env.client, task_queue)
    await wait_for_status(handle, "waiting_event")
    script = readme_block()
    event, decision = script.split("WANT=", 1)
    run_env = os.environ | {
        "PATH": f"{Path(binary('temporal')).parent}:{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "RUN": handle.id,
        "IDP": f"{sim.url}/idp",
        "ACCESS": people.access_token("hana"),
    }

    async def bash(text: str, env: dict[str, str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", text, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()

    await bash(event, run_env)
    await wait_for_status(handle, "waiting_approval")
    [approval] = (await status(handle)).approvals
    await bash("WANT=" + decision, run_env | {"DIGEST": approval.digest})
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "send_email") == 1
    [approval] = (await status(handle)).approvals
    assert approval.decided_by == "hana" and approval.proof_id
    assert (await status(handle)).refused == []
