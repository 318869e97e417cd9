"""The inbox and `list` survive any broken run, and a decision that was sent but not confirmed
says so (exit 3) instead of reading as a failure, on the dev server through `agentctl`.

A genuinely broken run: another workflow class, also named "AgentWorkflow", whose every workflow
task fails, started with the search attributes of a run waiting for an approval. Its queries and
updates get "Workflow Task in failed state", as a run of code with a bug would.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from durable_agents.workers.main import build_worker
from durable_agents.workflows.search import AGENT_NAME, AGENT_STATUS, PRINCIPAL
from tests.helpers import hire
from tests.test_cli import address, cli, ok, until_status
from tests.test_inbox_cli import start, unconfirmed, until_listed


@workflow.defn(name="AgentWorkflow")
class BrokenAgentWorkflow:
    """Code that cannot run: every workflow task fails (a bug, a bad deploy)."""

    @workflow.run
    async def run(self, data: Any) -> None:
        raise RuntimeError("boom: this code cannot run the run")


async def start_broken(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, Any]:
    handle = await env.client.start_workflow(
        "AgentWorkflow",
        {"agent": "onboarding"},
        id=f"broken-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(AGENT_NAME, "onboarding"),
                SearchAttributePair(AGENT_STATUS, "waiting_approval"),
                SearchAttributePair(PRINCIPAL, "tester"),
            ]
        ),
    )
    # Until its workflow task has failed at least once it is only a run not yet started.
    deadline = time.monotonic() + 30
    while (await handle.describe()).raw_description.pending_workflow_task.attempt < 2:
        assert time.monotonic() < deadline, "the broken run's workflow task never failed"
        await asyncio.sleep(0.2)
    return handle


async def test_a_broken_run_neither_takes_the_inbox_nor_the_list_down(
    dev_env: WorkflowEnvironment, dev_worker, task_queue: str
) -> None:
    addr = address(dev_env)
    healthy = await start(addr, task_queue, "onboarding", hire(), "ops-anna")
    await until_status(healthy, addr, "waiting_event")
    ok(await cli("signal", healthy, "clearance_granted", "--address", addr))
    await until_status(healthy, addr, "waiting_approval")

    broken_queue = f"broken-{uuid.uuid4().hex[:6]}"
    async with Worker(
        dev_env.client,
        task_queue=broken_queue,
        workflows=[BrokenAgentWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        broken = await start_broken(dev_env, broken_queue)
        await until_listed(addr, healthy)
        deadline = time.monotonic() + 10
        while broken.id not in ok(await cli("list", "--address", addr)).stderr:
            assert time.monotonic() < deadline, "the broken run never reached visibility"
            await asyncio.sleep(0.2)

        inbox = ok(await cli("approvals", "--address", addr, "--json"))
        rows = json.loads(inbox.stdout)
        assert healthy in [r["run"] for r in rows]
        assert broken.id not in [r["run"] for r in rows]
        [warning] = [line for line in inbox.stderr.splitlines() if broken.id in line]
        assert warning.startswith(f"warning: left out {broken.id}: ")
        assert "Workflow Task in failed state" in warning or "boom" in warning, warning

        table = ok(await cli("approvals", "--address", addr))
        assert healthy in table.stdout and broken.id not in table.stdout
        assert f"warning: left out {broken.id}: " in table.stderr

        listed = ok(await cli("list", "--status", "waiting_approval", "--address", addr, "--json"))
        runs = [r["run"] for r in json.loads(listed.stdout)]
        assert healthy in runs and broken.id not in runs
        [warning] = [line for line in listed.stderr.splitlines() if broken.id in line]
        assert warning.startswith(f"warning: left out {broken.id}: its workflow task keeps failing")
        assert "boom: this code cannot run the run" in warning
        await broken.terminate("test over")

    ok(await cli("approve", healthy, "--as", "hana", "--address", addr))
    assert (
        "outcome: completed" in ok(await cli("result", healthy, "--wait", "--address", addr)).stdout
    )


async def test_a_decision_sent_with_no_worker_is_unconfirmed_then_applied(
    dev_env: WorkflowEnvironment, sim, task_queue: str, ledger, monkeypatch
) -> None:
    # A worker that answered once counts as a poller for a while: keep the deadline short.
    monkeypatch.setenv("DURABLE_AGENTS_QUERY_TIMEOUT", "2")
    addr = address(dev_env)
    async with build_worker(dev_env.client, task_queue):
        run = await start(addr, task_queue, "onboarding", hire(), "ops-anna")
        await until_status(run, addr, "waiting_event")
        ok(await cli("signal", run, "clearance_granted", "--address", addr))
        [read] = (await until_status(run, addr, "waiting_approval"))["approvals"]

    # No worker: the decision (on what hana read) goes to the server, nobody confirms it in time.
    line = unconfirmed(
        await cli(
            "approve",
            run,
            "apr-1",
            "--digest",
            read["digest"],
            "--as",
            "hana",
            "--reason",
            "ok",
            "--address",
            addr,
        )  # fmt: skip
    )
    assert line.startswith(f"unconfirmed: decision sent to {run} but not confirmed within 2 s")
    assert "it may still be applied" in line
    assert f"`agentctl approvals show {run}`" in line and f"`agentctl status {run}`" in line
    assert f"agentctl worker --task-queue {task_queue}" in line

    # A worker takes the run up: the decision that was sent is applied, nothing sent again.
    async with build_worker(dev_env.client, task_queue):
        status = await until_status(run, addr, "completed", timeout=45)
        [approval] = status["approvals"]
        assert (approval["state"], approval["decided_by"], approval["reason"]) == (
            "approved",
            "hana",
            "ok",
        )
        shown = ok(await cli("approvals", "show", run, "--address", addr)).stdout
        assert "state: approved" in shown and "decided: approved by hana" in shown
    assert ledger(run, "send_email") == 1
