"""A plugin ships in-process models with its agents (`AgentSet(..., models=[ScriptedModel(...)])`):
a stock `agentctl worker` serves them on `scripted:` routes, so a new user's agent runs with no
API key and no model server; two different models under one name stop the worker at start.
The same run shows what a worker's identity writes into history: its `pid@host` and a short
tag, never its agent list, and `agentctl agents` still tells which workers serve the agent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents import AgentSet, DurableAgentsPlugin
from durable_agents._catalog import Catalog
from durable_agents._vocab.schemas import AgentRun
from durable_agents.errors import CatalogError
from durable_agents.testing import ScriptedModel
from durable_agents.workflows.agent import AgentWorkflow

# A new user's agent as README's "Write your own agent" shows it, its model in its AgentSet.
MY_EXPENSES = """
from pydantic import BaseModel

from durable_agents import AgentSet, AgentSpec, ApprovalPolicy, Budget, Directory, RunawayPolicy
from durable_agents.testing import Message, Reply, ScriptedModel, task_input


class Expense(BaseModel):
    amount: str
    purpose: str


def clerk(messages: list[Message]) -> Reply:
    expense = task_input(messages)
    return f"expense of {expense['amount']} for {expense['purpose']}: filed"


EXPENSE = AgentSpec(
    name="expense",
    version="1.0.0",
    description="Files an expense.",
    system_prompt="File the expense.",
    model_route=("scripted:expense",),
    tools=(),
    input_model=Expense,
    approvals=ApprovalPolicy(default_groups=("finance",)),
    budget=Budget(approvers=("finance",)),
    runaway=RunawayPolicy(groups=("finance",)),
)
AGENTS = AgentSet(
    (EXPENSE,),
    source="my_expenses",
    # expense-bot: a service principal, so the test starts runs with no person's proof
    directory=Directory(services=frozenset({"expense-bot"}), groups={"finance": frozenset({"fr"})}),
    models=[ScriptedModel("expense", clerk)],
)
"""

# Another plugin whose model takes the same name.
OTHER_EXPENSES = """
import dataclasses

from durable_agents import AgentSet
from durable_agents.testing import ScriptedModel
from my_expenses import EXPENSE

AGENTS = AgentSet(
    (dataclasses.replace(EXPENSE, name="expense_eu"),),
    models=[ScriptedModel("expense", lambda messages: "filed in euros")],
)
"""

NO_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DURABLE_AGENTS_PLUGINS")


def agentctl(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agentctl"), *args]


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    (tmp / "my_expenses.py").write_text(textwrap.dedent(MY_EXPENSES))
    (tmp / "other_expenses.py").write_text(textwrap.dedent(OTHER_EXPENSES))
    path = os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if k not in NO_KEYS}
    return (
        env
        | {
            "PYTHONPATH": path,
            # Nothing answers here: no sim, no model server.
            "DURABLE_AGENTS_SIM_URL": "http://127.0.0.1:1",
            "DURABLE_AGENTS_STORE_URL": f"sqlite:///{tmp / 'store.sqlite3'}",
            "DURABLE_AGENTS_AUDIT_PATH": str(tmp / "audit.sqlite3"),
            "DURABLE_AGENTS_METRICS_ADDRESS": "off",
            "DURABLE_AGENTS_TRACING": "off",
        }
        | extra
    )


async def run(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def test_two_models_under_one_name_are_refused() -> None:
    first = ScriptedModel("clerk", lambda messages: "one")
    second = ScriptedModel("clerk", lambda messages: "two")
    ours, theirs = AgentSet((), source="ours", models=[first]), AgentSet((), models=[second])
    assert Catalog.build([ours, AgentSet((), models=[first])]).local_models == {"clerk": first}
    with pytest.raises(CatalogError, match=r"two in-process models are named 'clerk' \(from ours"):
        Catalog.build([ours, theirs])
    with pytest.raises(CatalogError, match="from ours and the plugin's models="):
        DurableAgentsPlugin(ours, models=[second])
    assert DurableAgentsPlugin(ours, models=[first])  # the same model twice is one model
    with pytest.raises(CatalogError, match="models= takes a ModelTable and in-process models"):
        AgentSet((), source="typo", models=["scripted:clerk"])  # type: ignore[list-item]


async def test_a_stock_worker_refuses_two_plugins_whose_models_share_a_name(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path, TEMPORAL_ADDRESS="127.0.0.1:1")  # refused before any connection
    args = agentctl("worker", "--plugin", "my_expenses", "--plugin", "other_expenses")
    code, out = await run(args, env)
    assert code == 1
    [line] = out.strip().splitlines()
    assert line.startswith("error: two in-process models are named 'expense' (from my_expenses "
                           "and other_expenses): rename one"), out  # fmt: skip


async def test_a_stock_worker_serves_the_models_a_plugin_ships(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    env = env_for(tmp_path, TEMPORAL_ADDRESS=address, DURABLE_AGENTS_TASK_QUEUE=task_queue)
    worker = await asyncio.create_subprocess_exec(
        *agentctl("worker", "--plugin", "my_expenses"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        handle = await dev_env.client.start_workflow(
            AgentWorkflow.run,
            AgentRun(
                agent="expense",
                input={"amount": "12.50", "purpose": "train"},
                principal="expense-bot",
            ),
            id=f"expense-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 90)
        assert result.outcome == "completed", result
        assert result.answer == "expense of 12.50 for train: filed"

        # The worker's identity in history: `pid@host` and the tag of its agents, no list.
        identities = {
            attrs.identity
            for event in (await handle.fetch_history()).events
            for attrs in (
                event.workflow_task_started_event_attributes,
                event.workflow_task_completed_event_attributes,
            )
            if attrs.identity
        }
        [identity] = identities
        host, _, tag = identity.partition(" #")
        assert host.startswith(f"{worker.pid}@") and len(tag) == 8 and "expense" not in identity

        # agentctl agents tells it from the tag, against the plugins it loads itself.
        cli_env = env | {"DURABLE_AGENTS_PLUGINS": "my_expenses"}
        code, out = await run(agentctl("agents", "expense", "--json"), cli_env)
        assert code == 0, out
        [row] = json.loads(out)
        assert row["workers"] == f"1 on {task_queue!r}"
    finally:
        worker.kill()
        await worker.wait()
