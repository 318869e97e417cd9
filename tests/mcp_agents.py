"""Agents that use MCP servers nobody here wrote, for tests/test_mcp.py; and a user's own worker
process serving them with an in-process scripted model:

    python -m tests.mcp_agents TASK_QUEUE     (TEMPORAL_ADDRESS, LEDGER_URL in the environment)
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.worker import Worker

from durable_agents import (
    AgentSet,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    Directory,
    DurableAgentsPlugin,
    FromEnv,
    MCPServer,
    MCPToolTerms,
    Stdio,
    StreamableHTTP,
)
from durable_agents.testing import Message, Reply, ScriptedModel, call, results, task_input

BIN = Path(sys.executable).parent


class Account(BaseModel):
    account: str
    amount: str = "10.00"


class Zone(BaseModel):
    timezone: str


def clock(messages: list[Message]) -> Reply:
    """Ask the time server, once with arguments its schema refuses, then properly."""
    zone = task_input(messages)["timezone"]
    asked = results(messages, "get_current_time")
    if not asked:
        return call("get_current_time", tz=zone)  # not in the schema: the model hears why
    if "error" in asked[-1]:
        return call("get_current_time", timezone=zone)
    return f"it is {asked[-1]['datetime']} in {asked[-1]['timezone']}, a {asked[-1]['day_of_week']}"


def payout(messages: list[Message]) -> Reply:
    data = task_input(messages)
    if not results(messages, "account_details"):
        return call("account_details", account=data["account"])
    sent = results(messages, "transfer")
    if not sent:
        return call("transfer", account=data["account"], amount=data["amount"])
    outcome = sent[-1]
    return (
        f"transfer: {outcome.get('status') or outcome.get('approval')} ({outcome.get('key', '')})"
    )


TIME = MCPServer(
    name="time",
    transport=Stdio(command=str(BIN / "mcp-server-time"), args=("--local-timezone", "UTC")),
    deny=("convert_time",),
)
CLOCK = AgentSpec(
    name="clock",
    version="1",
    description="Tells the time from an MCP server.",
    system_prompt="Tell the time.",
    model_route=("scripted:clock",),
    tools=(),
    input_model=Zone,
    mcp_servers=(TIME,),
)
LEDGER = MCPServer(
    name="ledger",
    transport=StreamableHTTP(url=FromEnv("LEDGER_URL")),
    rename={"lookup": "account_details"},
    tools={"transfer": MCPToolTerms(scopes=("payments:send",), timeout=None)},
    timeout=timedelta(seconds=20),
)
PAYOUT = AgentSpec(
    name="payout",
    version="1",
    description="Pays out through a ledger's MCP server, with approval.",
    system_prompt="Look the account up, then transfer.",
    model_route=("scripted:payout",),
    tools=(),
    input_model=Account,
    mcp_servers=(LEDGER,),
    approvals=ApprovalPolicy(
        rules=(ApprovalRule(tool="transfer", description="money leaves", groups=("treasury",)),)
    ),
)
PEOPLE = Directory(
    people=frozenset({"alice"}),
    services=frozenset({"tester"}),  # runs tests start as code does: no person, no proof
    groups={"treasury": frozenset({"olga"}), "operators": frozenset({"olga", "omar"})},
)
AGENTS = AgentSet((CLOCK, PAYOUT), directory=PEOPLE)
MODELS = [ScriptedModel("clock", clock), ScriptedModel("payout", payout)]


async def main(task_queue: str) -> None:
    plugin = DurableAgentsPlugin(AGENTS, models=MODELS)
    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"], plugins=[plugin])
    async with Worker(client, task_queue=task_queue):
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
