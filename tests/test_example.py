"""The worked example, examples/invoice_agent, installed as any user's package (`make install`
does it): a stock `agentctl worker` finds it through its entry point, with no --plugin and no
edit to the project, and `agentctl` runs and approves it against the dev server and the sim."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from invoice_agent import AGENTS, ledger  # installed by `make install` (pip install -e …)
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_agents import DurableAgentsPlugin
from durable_agents._discovery import installed
from durable_agents._vocab.schemas import AgentResult
from durable_agents.workflows.agent import AgentWorkflow
from sim.world import world
from tests.people import signed_in_env


def agentctl(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agentctl"), *args]


async def run(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    env = signed_in_env(args[1:], env)  # approve --as olga: olga signed in
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def waiting_approval(handle: WorkflowHandle[Any, Any], timeout: float = 60) -> None:
    async def poll() -> None:
        while True:
            try:
                if (await handle.query(AgentWorkflow.status)).status == "waiting_approval":
                    return
            except Exception:  # noqa: BLE001  (no worker has taken the run up yet)
                pass
            await asyncio.sleep(0.2)

    await asyncio.wait_for(poll(), timeout)


async def test_the_example_is_installed_as_a_plugin_with_a_configurable_model() -> None:
    assert "invoice_agent:AGENTS" in installed()
    env = os.environ | {"INVOICE_AGENT_MODEL": "openai:gpt-4.1"}
    code, out = await run(agentctl("agents", "invoice", "--offline", "--json"), env)
    assert code == 0, out
    [agent] = json.loads(out)
    assert agent["model_route"] == ["openai:gpt-4.1"]


async def test_the_example_runs_on_a_stock_worker_and_pays_once(
    dev_env: WorkflowEnvironment,
    sim: Any,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ledger.DB_ENV, str(tmp_path / "payables.sqlite3"))
    monkeypatch.delenv("DURABLE_AGENTS_PLUGINS", raising=False)
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
        **world(sim.url),
    }
    worker = await asyncio.create_subprocess_exec(*agentctl("worker"), env=env)
    try:
        code, out = await run(
            agentctl("run", "invoice", "--as", "alice", "--input", '{"invoice_id": "INV-1"}'), env
        )
        assert code == 0, out
        run_id = out.split("started run ")[1].split()[0]
        handle = dev_env.client.get_workflow_handle(run_id, result_type=AgentResult)
        await waiting_approval(handle)
        code, out = await run(agentctl("agents", "invoice"), env)
        assert code == 0 and "invoice 1.0.0" in out and f"1 on {task_queue!r}" in out, out
        code, out = await run(agentctl("approvals", "--approver", "olga"), env)
        assert code == 0 and run_id in out and "pay_invoice" in out, out
        code, out = await run(agentctl("approve", run_id, "--as", "olga"), env)
        assert code == 0, out
        code, out = await run(agentctl("result", run_id, "--wait"), env)
        assert code == 0 and "outcome: completed after 3 turns" in out, out
        assert "invoice INV-1: paid" in out, out
        [payment] = ledger.payments()
        assert payment.invoice_id == "INV-1" and payment.amount == "120.00"
        assert payment.idempotency_key.startswith(f"{run_id}/")
        code, out = await run(agentctl("audit", run_id), env)
        assert code == 0 and "approval apr-1 of pay_invoice: approved by olga" in out, out
    finally:
        worker.kill()
        await worker.wait()


async def test_the_example_runs_on_your_own_worker_with_the_plugin(
    dev_env: WorkflowEnvironment,
    sim: Any,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ledger.DB_ENV, str(tmp_path / "payables.sqlite3"))
    address = dev_env.client.service_client.config.target_host
    env = os.environ | {"TEMPORAL_ADDRESS": address}
    # As the README shows it: the plugin on the client; workers made from it take it over.
    client = await Client.connect(address, plugins=[DurableAgentsPlugin(AGENTS)])
    async with Worker(client, task_queue=task_queue):
        code, out = await run(
            agentctl(
                "run", "invoice", "--as", "alice", "--task-queue", task_queue,
                "--input", '{"invoice_id": "INV-2"}',
            ),
            env,
        )  # fmt: skip
        assert code == 0, out
        run_id = out.split("started run ")[1].split()[0]
        handle = client.get_workflow_handle(run_id, result_type=AgentResult)
        await waiting_approval(handle)
        code, out = await run(agentctl("approve", run_id, "--as", "pat"), env)
        assert code == 0, out
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.answer == "invoice INV-2: paid"
    assert [(p.invoice_id, p.amount) for p in ledger.payments()] == [("INV-2", "980.00")]
