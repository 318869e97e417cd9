"""A probe agent for hibernation: one model turn, then a wait for an event, then one more turn.

    python -m bench.sleeper TASK_QUEUE     (TEMPORAL_ADDRESS in the environment)

runs a worker of it in its own process (what `bench.hibernation` measures); tests build one
in-process with `AGENTS` and `MODELS`. The model is scripted, in the worker's process: the
figures are the platform's, not a model's. `DURABLE_AGENTS_MAX_CACHED_WORKFLOWS` bounds the
worker's cache of runs (workers/main.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle

from bench._serve import exit_after, until_sigterm
from durable_agents import WAIT_FOR_EVENT, AgentSet, AgentSpec, Directory
from durable_agents._vocab import names
from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.testing import Message, Reply, ScriptedModel, call, results

EVENT = "go"


class Nap(BaseModel):
    hours: int = 48


def script(messages: list[Message]) -> Reply:
    """Wait for the event first; once it came, answer."""
    got = results(messages, "wait_for_event")
    if not got:
        return call("wait_for_event", events=[EVENT], timeout_hours=48)
    return f"woke: {got[0].get('status', '?')}"


SLEEPER = AgentSpec(
    name="sleeper",
    version="1.0.0",
    description="Waits for the `go` event after one model turn, then answers.",
    system_prompt="Wait for the go event, then say so.",
    model_route=("scripted:sleeper",),
    tools=(WAIT_FOR_EVENT,),
    input_model=Nap,
)
# Runs the bench starts are code's: they act for a service principal, with no proof.
PEOPLE = Directory(services=frozenset({"tester"}), groups={"operators": frozenset({"olga"})})
AGENTS = AgentSet((SLEEPER,), directory=PEOPLE)
MODELS = [ScriptedModel("sleeper", script)]


async def start(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """One sleeper run (not through `agentctl`, whose catalog does not know this agent)."""
    return await client.start_workflow(
        names.WORKFLOW,
        AgentRun(agent="sleeper", principal="tester"),
        id=workflow_id,
        task_queue=task_queue,
        result_type=AgentResult,
    )


async def waiting(client: Client, task_queue: str) -> int:
    """How many sleeper runs on `task_queue` wait for their event (visibility: it lags a bit)."""
    query = f'TaskQueue = "{task_queue}" AND AgentStatus = "waiting_event"'
    return (await client.count_workflows(query)).count


async def all_waiting(client: Client, task_queue: str, n: int, timeout: float) -> float:
    """Wait until `n` runs wait; the seconds it took."""
    started = time.monotonic()
    while await waiting(client, task_queue) < n:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"fewer than {n} runs waiting after {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def main(task_queue: str) -> None:
    from durable_agents.workers.client import connect
    from durable_agents.workers.main import build_worker

    client = await connect(os.environ["TEMPORAL_ADDRESS"], wait_seconds=30)
    await until_sigterm(build_worker(client, task_queue, agents=[AGENTS], models=MODELS))


if __name__ == "__main__":
    exit_after(main(sys.argv[1]))
