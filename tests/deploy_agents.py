"""Two versions of the same agents, for tests/test_deploy.py: what a team deploys one after the
other while runs are in flight. A worker process of either version:

    DEPLOY_VERSION=N python -m tests.deploy_agents TASK_QUEUE [--check]
        (TEMPORAL_ADDRESS, DURABLE_AGENTS_DEPLOYMENT, DEPLOY_DIR in the environment; --check:
        the version's `agentctl worker --check`, then exit)

Version 2 changes the prompt, changes a tool's answer, and changes the workflow behind
`workflow.patched` (a note at the start of each run of the chain). Version 3 is a bad build: a
change to the workflow without a patch, which its check must catch. The `step` tool records each
effect once per idempotency key in DEPLOY_DIR/ledger.sqlite3, with the version that made it, and
waits (heartbeating) while DEPLOY_DIR/hold exists: a run "between turns" is one whose step is
held when the new version is promoted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from pydantic import BaseModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_agents import (
    WAIT_FOR_EVENT,
    AgentRun,
    AgentSet,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    Directory,
    ToolContext,
    tool,
)
from durable_agents._vocab.schemas import AgentResult
from durable_agents.testing import Message, Reply, ScriptedModel, call, results, task_input
from durable_agents.workflows.agent import AgentWorkflow

VERSION = os.environ.get("DEPLOY_VERSION", "1")
DIR = Path(os.environ.get("DEPLOY_DIR", "."))


class Job(BaseModel):
    job: str
    mode: str  # approval | event | steps


class Step(BaseModel):
    job: str
    n: int


class Done(BaseModel):
    job: str
    n: int
    version: str


def _ledger() -> sqlite3.Connection:
    conn = sqlite3.connect(DIR / "ledger.sqlite3", timeout=30, isolation_level=None)
    conn.execute(
        "create table if not exists effects (key text primary key, job text, n int, version text)"
    )
    return conn


@tool(side_effect="read_only")
async def step(args: Step, ctx: ToolContext) -> Done:
    """Do one step of the job (once per idempotency key)."""
    while (DIR / "hold").exists():
        ctx.heartbeat()
        await asyncio.sleep(0.2)
    with _ledger() as conn:
        conn.execute(
            "insert or ignore into effects values (?, ?, ?, ?)",
            (ctx.idempotency_key, args.job, args.n, f"v{VERSION}"),
        )
    # Version 2's tool answers differently.
    return Done(job=args.job, n=args.n, version=f"v{VERSION}" + ("-new" if VERSION == "2" else ""))


@tool(side_effect="irreversible")
async def publish(args: Step, ctx: ToolContext) -> Done:
    """Publish the job's result (a person approves first)."""
    with _ledger() as conn:
        conn.execute(
            "insert or ignore into effects values (?, ?, ?, ?)",
            (ctx.idempotency_key, args.job, args.n, f"v{VERSION}"),
        )
    return Done(job=args.job, n=args.n, version=f"v{VERSION}")


def script(messages: list[Message]) -> Reply:
    """A publish behind an approval, or a wait for an event, or neither; then two steps; the
    last word names the version each step ran on."""
    data = task_input(messages)
    if data["mode"] == "approval" and not results(messages, "publish"):
        return call("publish", job=data["job"], n=0)
    if data["mode"] == "event" and not results(messages, "wait_for_event"):
        return call("wait_for_event", events=["go"], timeout_hours=48)
    steps = results(messages, "step")
    if len(steps) < 2:
        return call("step", job=data["job"], n=len(steps) + 1)
    return f"{data['job']} done: steps on {','.join(s['version'] for s in steps)}"


def spec(name: str, upgrade: str) -> AgentSpec:
    return AgentSpec(
        name=name,
        version=VERSION,
        description="A job in steps.",
        system_prompt=f"Prompt of version {VERSION}: do the job in steps.",
        model_route=("scripted:steps",),
        tools=(step, publish, WAIT_FOR_EVENT),
        input_model=Job,
        approvals=ApprovalPolicy(
            rules=(ApprovalRule(tool="publish", description="goes public", groups=("editors",)),)
        ),
        upgrade=upgrade,  # type: ignore[arg-type]
    )


PEOPLE = Directory(
    services=frozenset({"tester"}),  # the test starts runs as code does: no person, no proof
    groups={"editors": frozenset({"olga"}), "operators": frozenset({"olga", "omar"})},
)
AGENTS = AgentSet(
    (spec("stepper", "next_turn"), spec("stepper_pinned", "pinned")), directory=PEOPLE
)


@workflow.defn(name="AgentWorkflow")
class AgentWorkflowV2(AgentWorkflow):
    """Version 2's change to the workflow itself, made the safe way."""

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        if workflow.patched("deploy-test-v2-memo"):
            workflow.upsert_memo({"changed_by": "version 2"})  # a new command: behind the patch
        return await super().run(run)


@workflow.defn(name="AgentWorkflow")
class AgentWorkflowV3(AgentWorkflow):
    """Version 3: a bad build. A new timer before the run goes on, NOT behind a patch: it
    cannot replay what earlier versions wrote."""

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        await workflow.sleep(0.1)
        return await super().run(run)


WORKFLOWS = {"2": AgentWorkflowV2, "3": AgentWorkflowV3}


async def check(task_queue: str) -> int:
    """`agentctl worker --check`, as this version's code runs it."""
    from durable_agents._catalog import Catalog
    from durable_agents.workers.main import check_worker

    report = await check_worker(
        task_queue=task_queue,
        catalog=Catalog.build([AGENTS]),
        workflow=WORKFLOWS.get(VERSION, AgentWorkflow),
    )
    print(report.text(), flush=True)
    return 0 if report.passed else 1


async def main(task_queue: str) -> None:
    from durable_agents.workers.client import connect
    from durable_agents.workers.main import build_worker, join_deployment

    client = await connect(os.environ["TEMPORAL_ADDRESS"])
    worker: Worker = build_worker(
        client,
        task_queue,
        agents=[AGENTS],
        models=[ScriptedModel("steps", script)],
        workflow=WORKFLOWS.get(VERSION, AgentWorkflow),
    )
    await join_deployment(client)  # the first worker of the deployment makes itself current
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:  # SIGTERM: drain in-flight work, then exit 0
        print("worker ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.stdout.flush()
        os._exit(asyncio.run(check(sys.argv[1])))
    asyncio.run(main(sys.argv[1]))
    # Drained and shut down. Exit now: the SDK's core threads can abort the interpreter's
    # finalization ("PyGILState_Release"), which would turn a clean stop into SIGABRT.
    sys.stdout.flush()
    os._exit(0)
