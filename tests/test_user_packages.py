"""A user's project may have its own top-level `activities` and `workflows` packages (the
layout Temporal's own samples teach): our code lives under `durable_agents.*`, so theirs and ours
never collide. Their agent runs with `durable_agents.testing` and with a stock `agentctl worker`,
each in a process started in their project, as they would start it."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from durable_agents.client import AgentClient

# The user's own packages, named as ours are named in this repository's folders.
ACTIVITIES = """
from pydantic import BaseModel

from durable_agents import ToolContext, tool

FILED: list[str] = []


class Expense(BaseModel):
    amount: str
    purpose: str


class Filed(BaseModel):
    reference: str


@tool(side_effect="read_only")
async def file_expense(args: Expense, ctx: ToolContext) -> Filed:
    \"\"\"File an expense in the user's own system.\"\"\"
    return Filed(reference=f"EXP-{args.amount}-{args.purpose}")
"""

WORKFLOWS = """
from activities import Expense, file_expense

from durable_agents import AgentSet, AgentSpec, ApprovalPolicy, Budget, Directory, RunawayPolicy
from durable_agents.testing import Message, Reply, ScriptedModel, call, results, task_input


def clerk(messages: list[Message]) -> Reply:
    done = results(messages, "file_expense")
    if not done:
        return call("file_expense", **task_input(messages))
    return f"filed as {done[-1]['reference']}"


EXPENSE = AgentSpec(
    name="expense",
    version="1.0.0",
    description="Files an expense.",
    system_prompt="File the expense.",
    model_route=("scripted:clerk",),
    tools=(file_expense,),
    input_model=Expense,
    approvals=ApprovalPolicy(default_groups=("finance",)),
    budget=Budget(approvers=("finance",)),
    runaway=RunawayPolicy(groups=("finance",)),
)
AGENTS = AgentSet(
    (EXPENSE,),
    source="workflows",
    directory=Directory(services=frozenset({"expense-bot"}), groups={"finance": frozenset({"fr"})}),
    models=[ScriptedModel("clerk", clerk)],
)
"""

# Their test, with our test kit.
CHECK = """
import asyncio, os, sys

import activities, workflows
from durable_agents.testing import run_agent

run = asyncio.run(
    run_agent(workflows.AGENTS, "expense", {"amount": "12", "purpose": "train"},
              principal="expense-bot")
)
assert run.outcome == "completed", run
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("activities", "workflows"))
print(run.answer, "|", activities.__file__, "|", ours, flush=True)
# The SDK's Rust threads can abort the interpreter at teardown (temporalio/sdk-python#300).
os._exit(0)
"""


def project(tmp: Path) -> dict[str, str]:
    for package, code in (("activities", ACTIVITIES), ("workflows", WORKFLOWS)):
        (tmp / package).mkdir()
        (tmp / package / "__init__.py").write_text(textwrap.dedent(code))
    (tmp / "check.py").write_text(textwrap.dedent(CHECK))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_AGENTS_PLUGINS")}
    return env | {
        "PYTHONPATH": str(tmp),  # their project, not this repository
        "DURABLE_AGENTS_STORE_URL": f"sqlite:///{tmp / 'store.sqlite3'}",
        "DURABLE_AGENTS_AUDIT_PATH": str(tmp / "audit.sqlite3"),
        "DURABLE_AGENTS_METRICS_ADDRESS": "off",
        "DURABLE_AGENTS_TRACING": "off",
    }


async def test_their_agent_runs_with_the_test_kit(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "check.py",
        cwd=tmp_path,
        env=project(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
    assert proc.returncode == 0, out
    answer, where, modules = (part.strip() for part in out.strip().splitlines()[-1].split("|"))
    assert answer == "filed as EXP-12-train"
    assert where == str(tmp_path / "activities" / "__init__.py")  # theirs, not ours
    assert modules == "['activities', 'workflows']"  # nothing of ours under their names


async def test_their_agent_runs_on_a_stock_worker(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    env = project(tmp_path) | {
        "TEMPORAL_ADDRESS": address,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
    }
    agentctl = str(Path(sys.executable).parent / "agentctl")
    worker = await asyncio.create_subprocess_exec(
        agentctl,
        "worker",
        "--plugin",
        "workflows",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        from durable_agents._vocab.schemas import AgentRun

        # Started from outside their project (the run is checked against the worker's agents).
        handle = await dev_env.client.start_workflow(
            "AgentWorkflow",
            AgentRun(
                agent="expense",
                input={"amount": "30", "purpose": "hotel"},
                principal="expense-bot",
            ),
            id=f"expense-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(AgentClient(dev_env.client).run(handle.id).result(), 90)
        assert result.outcome == "completed", result
        assert result.answer == "filed as EXP-30-hotel"
    finally:
        worker.terminate()
        _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert "Traceback" not in err.decode(), err.decode()[-3000:]
