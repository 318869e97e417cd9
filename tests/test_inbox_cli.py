"""The operator's inbox from a terminal, on the dev server: `agentctl approvals | approve | reject |
message | resume`, with the refusals an operator meets (wrong person, unknown approval, a run
that does not need attention) as one line on stderr and a non-zero exit.

As in test_cli.py, every CLI call runs in a thread so that the session loop (and the worker on
it) keeps turning.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from temporalio.testing import WorkflowEnvironment

from durable_agents.workers.main import build_worker
from tests.helpers import hire
from tests.test_cli import address, cli, error, ok, until_status
from tests.test_refund import seed, ticket


def unconfirmed(result: Any) -> str:
    """Sent, not confirmed: exit 3 and one line on stderr saying how to check."""
    assert result.exit_code == 3, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return str(lines[0])


async def start(addr: str, task_queue: str, agent: str, data: dict[str, Any], who: str) -> str:
    started = ok(
        await cli("run", agent, "--input", json.dumps(data), "--as", who,
                  "--task-queue", task_queue, "--address", addr, "--json")
    )  # fmt: skip
    return str(json.loads(started.stdout)["run"])


async def inbox(addr: str, *args: str) -> list[dict[str, Any]]:
    rows = json.loads(ok(await cli("approvals", *args, "--address", addr, "--json")).stdout)
    assert isinstance(rows, list)
    return rows


async def until_listed(
    addr: str, run: str, present: bool = True, timeout: float = 10
) -> list[dict[str, Any]]:
    """Visibility is eventually consistent: poll, briefly, until the inbox agrees; the run's
    rows."""
    deadline = time.monotonic() + timeout
    while ((run in [r["run"] for r in await inbox(addr)]) != present) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.2)
    rows = [r for r in await inbox(addr) if r["run"] == run]
    assert bool(rows) == present, (
        f"run {run} {'not ' if present else ''}in the inbox after {timeout} s"
    )
    return rows


async def test_approvals_from_the_inbox(dev_env: WorkflowEnvironment, dev_worker, task_queue):
    addr = address(dev_env)
    run = await start(addr, task_queue, "onboarding", hire(full_name="Alan Turing"), "ops-anna")
    await until_status(run, addr, "waiting_event")
    ok(await cli("signal", run, "clearance_granted", "--address", addr))
    await until_status(run, addr, "waiting_approval")

    # The inbox: what waits, on which run, for whom.
    await until_listed(addr, run)
    [row] = [r for r in await inbox(addr) if r["run"] == run]
    assert (row["agent"], row["approval"], row["tool"]) == ("onboarding", "apr-1", "send_email")
    assert row["may decide"] == "@hr-managers"
    assert row["arguments"].startswith("send_email(") and "ada@lovelace.example" in row["arguments"]
    table = ok(await cli("approvals", "--address", addr)).stdout
    [line] = [t for t in table.splitlines() if run in t]
    assert "send_email" in line and "@hr-managers" in line and "apr-1" in line
    assert "MAY DECIDE" in table.splitlines()[0]
    assert run in [r["run"] for r in await inbox(addr, "--approver", "hana")]
    assert run not in [r["run"] for r in await inbox(addr, "--approver", "sam")]

    # Refusals: one line, non-zero, nothing recorded.
    stranger = error(await cli("approve", run, "--as", "mallory", "--address", addr))
    assert "decision refused: 'mallory' may not decide approval apr-1" in stranger
    assert "allowed: group hr-managers" in stranger
    unknown = error(await cli("reject", run, "apr-9", "--as", "hana", "--address", addr))
    assert "decision refused: no approval 'apr-9' on this run; pending: apr-1" in unknown
    own = error(await cli("approve", run, "--as", "ops-anna", "--address", addr))
    assert "'ops-anna' may not decide" in own  # the run's own principal is no HR manager
    status = json.loads(ok(await cli("status", run, "--address", addr, "--json")).stdout)
    assert [a["state"] for a in status["approvals"]] == ["pending"]

    # The decision, as recorded by the run.
    decided = ok(await cli("approve", run, "--as", "hana", "--reason", "ok", "--address", addr))
    [printed] = decided.stdout.splitlines()
    assert printed.startswith("apr-1 approved by hana at ") and " UTC (ok): send_email(" in printed
    done = ok(await cli("result", run, "--wait", "--address", addr)).stdout
    assert done.startswith("outcome: completed after")

    # Approving again (a retry after a lost answer) shows the same decision, run finished or not.
    again = ok(await cli("approve", run, "--as", "hana", "--reason", "ok", "--address", addr))
    assert again.stdout.splitlines() == [printed]
    as_json = json.loads(
        ok(await cli("approve", run, "apr-1", "--as", "hana", "--address", addr, "--json")).stdout
    )
    assert (as_json["id"], as_json["state"], as_json["decided_by"], as_json["reason"]) == (
        "apr-1",
        "approved",
        "hana",
        "ok",
    )
    # Anything but an exact repeat is refused, naming why.
    other = error(await cli("reject", run, "--as", "hugo", "--address", addr))
    assert f"run {run!r} has finished (completed); it takes no more decisions" in other
    await until_listed(addr, run, present=False)


async def test_message_answers_the_agents_question(
    dev_env: WorkflowEnvironment, dev_worker, sim, task_queue, ledger
):
    addr = address(dev_env)
    order = seed(sim.url, "45.00")  # under the limit: no approval, the question is the only stop
    data = {k: order[k] for k in ("customer_id", "email", "order_id", "ticket_id", "amount")}
    run = await start(addr, task_queue, "refund", data, "agent-desk")  # no reason given

    seen = await until_status(run, addr, "waiting_event")
    question = seen["question"]
    assert question and "reason for the refund of 45.00" in question
    text = ok(await cli("status", run, "--address", addr)).stdout
    assert f"an answer from agent-desk to: {question}" in text

    # Only the person the run acts for may message it; `resume` is for parked runs only.
    other = error(await cli("message", run, "it is fine", "--as", "mallory",
                            "--address", addr))  # fmt: skip
    assert "message refused: only 'agent-desk', for whom this run acts, may message it" in other
    assert "'mallory'" in other
    not_parked = error(await cli("resume", run, "--as", "olga", "--address", addr))
    assert f"run {run} does not need attention (it is waiting_event)" in not_parked

    answered = ok(await cli("message", run, "it arrived broken", "--as", "agent-desk",
                            "--address", addr))  # fmt: skip
    assert answered.stdout.strip() == f"answered: {question}"
    done = ok(await cli("result", run, "--wait", "--address", addr)).stdout
    assert done.startswith("outcome: completed after") and "Reason: it arrived broken" in done
    assert ledger(run, "issue_refund") == 1
    assert ticket(sim.url, order["ticket_id"])["status"] == "resolved"

    finished = error(await cli("resume", run, "--as", "olga", "--address", addr))
    assert f"run {run} does not need attention (it is completed)" in finished
    late = error(await cli("message", run, "one more thing", "--as", "agent-desk",
                           "--address", addr))  # fmt: skip
    assert f"run {run!r} has finished (completed); it takes no more messages" in late


async def test_a_run_no_worker_serves_neither_blocks_the_inbox_nor_hangs_a_decision(
    dev_env: WorkflowEnvironment, sim, task_queue, ledger, monkeypatch
):
    # A worker that answered once counts as a poller for minutes: keep the deadline short.
    monkeypatch.setenv("DURABLE_AGENTS_QUERY_TIMEOUT", "2")
    addr = address(dev_env)
    async with build_worker(dev_env.client, task_queue):
        run = await start(addr, task_queue, "onboarding", hire(), "ops-anna")
        await until_status(run, addr, "waiting_event")
        ok(await cli("signal", run, "clearance_granted", "--address", addr))
        await until_status(run, addr, "waiting_approval")
        [row] = await until_listed(addr, run)
    # Its worker is gone: the run cannot answer, the rest of the inbox still can.
    t0 = time.monotonic()
    listed = ok(await cli("approvals", "--address", addr, "--json"))
    assert time.monotonic() - t0 < 8
    assert run not in [r["run"] for r in json.loads(listed.stdout)]
    assert f"warning: left out {run}: run {run!r} did not answer within 2 s" in listed.stderr

    # Naming the approval and the digest read, hana needs no answer from the run to decide.
    t0 = time.monotonic()
    read = ("apr-1", "--digest", row["digest"])
    line = unconfirmed(await cli("approve", run, *read, "--as", "hana", "--address", addr))
    assert time.monotonic() - t0 < 8
    assert line.startswith(f"unconfirmed: decision sent to {run} but not confirmed within")
    assert f"agentctl worker --task-queue {task_queue}" in line

    # With a worker back the decision goes through (an exact repeat if the first one landed).
    async with build_worker(dev_env.client, task_queue):
        decided = ok(await cli("approve", run, *read, "--as", "hana", "--address", addr))
        assert decided.stdout.startswith("apr-1 approved by hana at ")
        done = ok(await cli("result", run, "--wait", "--address", addr)).stdout
        assert done.startswith("outcome: completed after")
    assert ledger(run, "send_email") == 1
