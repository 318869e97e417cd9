"""A worker's identity, which Temporal writes into every task event of history, stays short
(`pid@host` and an 8-hex tag of its agents); `agentctl agents` tells which workers serve which
agent from the tag (matched against the plugins it loads), from worker heartbeats where the tag
is not enough, and lists the agents with no server at all."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_agents import AgentSet, AgentSpec, Directory, DurableAgentsPlugin
from durable_agents._catalog import Catalog
from durable_agents.workers.identity import (
    agent_sets,
    digest,
    fleet,
    fleet_on,
    identity,
    plugin_name,
    tag_in_identity,
)


class In(BaseModel):
    x: str


def spec(name: str) -> AgentSpec:
    return AgentSpec(
        name=name,
        version="1",
        description="d",
        system_prompt="p",
        model_route=("scripted:x",),
        tools=(),
        input_model=In,
    )


OPERATORS = Directory(groups={"operators": frozenset({"olga"})})
SALES = AgentSet((spec("quote"), spec("invoice_sales")), source="sales", directory=OPERATORS)
HR = AgentSet((spec("hire"),), source="hr")
OPS = AgentSet((spec("pager"),), source="ops")
GHOST = AgentSet((spec("ghost"),), source="ghost")  # a plugin the CLI does not load
CLI = Catalog.build([SALES, HR, OPS])


def test_an_identity_is_pid_at_host_and_a_short_tag_whatever_the_agents() -> None:
    many = [f"agent_number_{i}" for i in range(200)]
    text = identity(many)
    base = f"{os.getpid()}@"
    assert text.startswith(base) and len(text) == len(identity([])) and "agent" not in text
    assert tag_in_identity(text) == digest(reversed(many)) and len(digest(many)) == 8
    assert identity(["a"], base="billing-svc") == f"billing-svc #{digest(['a'])}"
    assert tag_in_identity("4242@host") is None and tag_in_identity("4242@host #nothex!") is None


def test_the_cli_names_a_workers_agents_from_the_plugins_it_loads() -> None:
    sets = agent_sets(CLI)
    assert len(sets) == 7  # every union of the three plugins
    workers = [
        identity(["quote", "invoice_sales", "hire"], base="1@a"),  # sales + hr
        identity(CLI.agents, base="2@b"),  # all three
        identity(["pager"], base="3@c"),  # ops alone
        identity(["quote", "invoice_sales", "ghost"], base="4@d"),  # a plugin the CLI lacks
        "5@e agents=hire,pager",  # a worker from before the tag
    ]
    seen = fleet(CLI, workers)
    assert dict(seen.serving) == {"quote": 2, "invoice_sales": 2, "hire": 3, "pager": 3}
    assert seen.untold == 1
    # A heartbeat lists the agents the tag could not name.
    told = fleet(CLI, workers, {workers[3]: ["quote", "invoice_sales", "ghost"]})
    assert told.serving["quote"] == 3 and told.serving["ghost"] == 1 and told.untold == 0


def test_the_plugin_names_its_agents_for_heartbeats_only() -> None:
    plugin = DurableAgentsPlugin([SALES, HR])
    assert plugin.name() == "durable_agents.DurableAgentsPlugin agents=hire,invoice_sales,quote"
    assert plugin_name([f"a{i:04d}" for i in range(500)]) == "durable_agents.DurableAgentsPlugin"


async def test_agents_are_listed_with_no_server(tmp_path: Path) -> None:
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}  # nothing listens here
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "agentctl"),
        *("agents", "onboarding", "--json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    [row] = json.loads(out)
    assert row["name"] == "onboarding"
    assert row["workers"] == "not known (no Temporal server answered)"
    assert "cannot reach the Temporal server at 127.0.0.1:1" in err.decode()


async def test_a_worker_with_a_plugin_the_cli_lacks_is_told_by_its_heartbeat(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    # Heartbeats every second (the SDK's default is a minute) so the test need not wait.
    runtime = Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))
    client = await Client.connect(address, runtime=runtime)
    async with Worker(client, task_queue=task_queue, plugins=[DurableAgentsPlugin([SALES, GHOST])]):
        # Its identity: the client's and the tag (the plugin sets it; the worker was given none).
        request = DescribeTaskQueueRequest(
            namespace=dev_env.client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        for _ in range(50):
            described = await dev_env.client.workflow_service.describe_task_queue(request)
            if described.pollers:
                break
            await asyncio.sleep(0.2)
        [poller] = described.pollers
        assert poller.identity == identity(["ghost", "invoice_sales", "quote"], client.identity)
        # Its tag matches no set of the CLI's plugins: its heartbeat names its agents.
        for _ in range(50):
            seen = await fleet_on(dev_env.client, task_queue, CLI)
            if seen.serving:
                break
            await asyncio.sleep(0.2)
        assert dict(seen.serving) == {"quote": 1, "invoice_sales": 1, "ghost": 1}
        assert seen.untold == 0
