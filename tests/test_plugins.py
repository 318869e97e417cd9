"""A user's own agent and tools, in a module outside the project, served by a stock
`agentctl worker --plugin …`; the start-up refusals; and a mixed fleet that loses no run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import AgentResult, AgentStatus
from sim.world import world
from tests.people import signed_in_env

PLUGIN = '''
"""A user's agent that the installed example (examples/invoice_agent) does not have: a stock
worker does not know it. Its tools are the example's objects (tool names are one per catalog)."""
from pydantic import BaseModel

from durable_agents import AgentSpec, ApprovalPolicy, ApprovalRule
from invoice_agent.tools import lookup_invoice, pay_invoice


class BillRun(BaseModel):
    invoice_id: str


BILLS = AgentSpec(
    name="bills",
    version="1.0.0",
    description="Pay an open invoice, with an operator's approval.",
    system_prompt="Look the invoice up; pay it if it is open.",
    model_route=("sim-openai:invoice",),
    tools=(lookup_invoice, pay_invoice),
    input_model=BillRun,
    approvals=ApprovalPolicy(
        rules=(ApprovalRule(tool="pay_invoice", description="money leaves", groups=("operators",)),)
    ),
)
AGENTS = [BILLS]
'''

BROKEN = {
    "no_annotations": """
from durable_agents._tools import tool
@tool(side_effect="read_only")
async def lookup(args, ctx):
    '''Look something up.'''
""",
    "no_code": """
from datetime import timedelta
from pydantic import BaseModel
from durable_agents._spec import AgentSpec, ToolContract
class In(BaseModel):
    x: str
BARE = ToolContract(name="bare", description="d", input_model=In, output_model=In,
                    side_effect="read_only")
AGENTS = [AgentSpec(name="bare_agent", version="1", description="d", system_prompt="p",
                    model_route=("sim-openai:echo",), tools=(BARE,), input_model=In)]
""",
    "duplicate": """
import dataclasses
from sim.agents.bench import BENCH
AGENTS = [dataclasses.replace(BENCH, name="onboarding")]
""",
    "raises": """
raise RuntimeError("the plugin's config file is missing")
""",
    "no_docstring": """
from pydantic import BaseModel
from durable_agents import ToolContext, tool
class In(BaseModel):
    x: str
@tool(side_effect="read_only")
async def lookup(args: In, ctx: ToolContext) -> In:
    return args
""",
    "unknown_group": """
import dataclasses
from durable_agents import ApprovalPolicy
from sim.agents.bench import BENCH
AGENTS = [dataclasses.replace(BENCH, name="b2", approvals=ApprovalPolicy(default_groups=("cfo",)))]
""",
    "rule_without_tool": """
import dataclasses
from durable_agents import ApprovalPolicy, ApprovalRule
from sim.agents.bench import BENCH
rule = ApprovalRule(tool="wire_money", description="d", groups=("operators",))
AGENTS = [dataclasses.replace(BENCH, name="b3", approvals=ApprovalPolicy(rules=(rule,)))]
""",
    "unpriced": """
import dataclasses
from decimal import Decimal
from durable_agents import Budget
from sim.agents.bench import BENCH
AGENTS = [dataclasses.replace(BENCH, name="b4", model_route=("openai:gpt-99",),
                              budget=Budget(max_cost_usd=Decimal("5")))]
""",
}


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    store = tmp / "store"
    store.mkdir(exist_ok=True)
    path = os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")])
    return os.environ | {"PYTHONPATH": path, "INVOICE_AGENT_DB": str(store / "db.sqlite3")} | extra


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


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("no_annotations", "failed to import: ToolDefinitionError: tool lookup: annotate its"),
        ("no_code", "tool 'bare' has no code: define it with @durable_agents.tool"),
        ("duplicate", "two agents are named 'onboarding'"),
        ("raises", "failed to import: RuntimeError: the plugin's config file is missing"),
        ("plugin_missing:NOPE", "has no attribute 'NOPE'"),
        ("no_docstring", "tool lookup: give it a docstring (the model reads it)"),
        ("unknown_group", "names approver group 'cfo', which no directory has"),
        ("rule_without_tool", "an approval rule names tool 'wire_money'"),
        ("unpriced", "no price for model 'gpt-99'"),
    ],
)
async def test_a_plugin_that_cannot_serve_stops_the_worker_in_one_line(
    tmp_path: Path, module: str, says: str
) -> None:
    for name, text in BROKEN.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    (tmp_path / "plugin_missing.py").write_text("AGENTS = []\n")
    # Nothing is reachable at this address: the refusal comes before any connection.
    env = env_for(tmp_path, TEMPORAL_ADDRESS="127.0.0.1:1")
    code, out = await run(agentctl("worker", "--plugin", module), env)
    assert code == 1
    [line] = out.strip().splitlines()
    assert line.startswith("error: ") and says in line, out
    # agentctl loads the same set, and refuses the same way.
    code, out = await run(agentctl("agents", "--offline"), env | {"DURABLE_AGENTS_PLUGINS": module})
    assert code == 1 and says in out


async def test_probe_agents_are_listed_only_when_asked(tmp_path: Path) -> None:
    code, shown = await run(agentctl("agents", "--offline"), env_for(tmp_path))
    assert code == 0 and "onboarding 1.0.0" in shown and "bench" not in shown
    code, shown = await run(agentctl("agents", "--offline", "--all", "--json"), env_for(tmp_path))
    assert code == 0 and "bench" in {a["name"] for a in json.loads(shown)}


async def test_a_malformed_plugin_list_is_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path, DURABLE_AGENTS_PLUGINS="good, not a module!")
    code, out = await run(agentctl("agents", "--offline"), env)
    assert code == 1 and "'not a module!' is not module[:attribute]" in out


async def until(handle: WorkflowHandle[Any, Any], check: Any, timeout: float = 90) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.5)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.slow  # `make test-slow`
async def test_a_users_agent_runs_on_a_stock_worker_and_a_mixed_fleet_loses_no_run(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str, tmp_path: Path
) -> None:
    (tmp_path / "my_invoices.py").write_text(PLUGIN)
    address = dev_env.client.service_client.config.target_host
    env = env_for(
        tmp_path,
        TEMPORAL_ADDRESS=address,
        DURABLE_AGENTS_TASK_QUEUE=task_queue,
        **world(sim.url),
    )
    cli_env = env | {"DURABLE_AGENTS_PLUGINS": "my_invoices"}
    workers = []
    try:
        # A worker of the old fleet: it does not know the agent.
        workers.append(await asyncio.create_subprocess_exec(*agentctl("worker"), env=env))
        code, out = await run(
            agentctl("run", "bills", "--as", "alice", "--input", '{"invoice_id": "INV-1"}'),
            cli_env,
        )
        assert code == 0, out
        run_id = out.split("started run ")[1].split()[0]
        handle = dev_env.client.get_workflow_handle(run_id, result_type=AgentResult)

        async def refused_by_the_old_worker() -> bool:
            history = await handle.fetch_history()
            failed = [
                e.workflow_task_failed_event_attributes.failure.message
                for e in history.events
                if e.HasField("workflow_task_failed_event_attributes")
            ]
            return any("no worker here knows agent 'bills'" in m for m in failed)

        await until(handle, refused_by_the_old_worker)
        assert (await handle.describe()).status.name == "RUNNING"  # waiting, not failed
        code, out = await run(agentctl("status", run_id), cli_env)
        assert code != 0 and "no worker here knows agent 'bills'" in out, out
        code, out = await run(agentctl("agents", "bills"), cli_env)
        assert code == 0 and f"none on {task_queue!r} serves it" in out, out

        # The new worker joins the same queue with the plugin: the run goes on there.
        workers.append(
            await asyncio.create_subprocess_exec(
                *agentctl("worker", "--plugin", "my_invoices"), env=env
            )
        )

        async def waiting_approval() -> bool:
            # Until the new worker has the run, the old one answers queries with the reason.
            try:
                status = await handle.query("status", result_type=AgentStatus)
            except (RPCError, WorkflowQueryFailedError) as exc:
                assert "no worker here knows agent 'bills'" in str(exc) or (
                    "Workflow Task in failed state" in str(exc)
                )
                return False
            return status.status == "waiting_approval"

        await until(handle, waiting_approval, timeout=150)
        code, out = await run(agentctl("agents", "bills"), cli_env)
        assert code == 0 and f"1 on {task_queue!r}" in out, out
        code, out = await run(agentctl("approve", run_id, "--as", "olga"), cli_env)
        assert code == 0, out
        result = await handle.result()
        assert result.outcome == "completed" and "paid" in result.answer
        os.environ["INVOICE_AGENT_DB"] = env["INVOICE_AGENT_DB"]
        from invoice_agent import ledger

        [payment] = ledger.payments()
        assert payment.amount == "120.00" and payment.idempotency_key.startswith(f"{run_id}/")
        code, out = await run(agentctl("audit", run_id), cli_env)
        assert code == 0 and "approval apr-1 of pay_invoice: approved by olga" in out, out
        assert "pay_invoice [irreversible] side effect: ok" in out, out
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
