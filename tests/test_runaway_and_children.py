"""Runaway variants (idle turns, asking a person) and a sub-agent that fails."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_agents._spec import RunawayPolicy
from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.client import start_run
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from sim.agents import AGENTS
from sim.agents.bench import BENCH
from tests.helpers import wait_for_status
from tests.people import decide


@contextlib.asynccontextmanager
async def probe(
    env: WorkflowEnvironment, task_queue: str, name: str, route: str, policy: RunawayPolicy
) -> AsyncIterator[WorkflowHandle[Any, AgentResult]]:
    """A run of a bench variant, on a worker that serves it beside the sim world's agents."""
    spec = dataclasses.replace(BENCH, name=name, model_route=(route,), runaway=policy)
    async with build_worker(env.client, task_queue, agents=[AGENTS, spec]):
        run = AgentRun(agent=name, input={"turns": 50}, principal="tester")
        yield await env.client.start_workflow(
            AgentWorkflow.run, run, id=f"{name}-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )


async def test_turns_without_progress_are_noticed(ts_env, sim, task_queue):
    policy = RunawayPolicy(max_repeats=9, max_idle_turns=2)
    async with probe(ts_env, task_queue, "pingpong", "sim-openai:pingpong", policy) as handle:
        await _noticed(handle)


async def _noticed(handle: WorkflowHandle[Any, AgentResult]) -> None:
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "2 turns in a row without a new successful tool call" in (status.last_error or "")
    assert status.turn == 4  # ping, pong: progress; ping, pong again: none
    await handle.terminate("done")


async def test_a_runaway_can_ask_a_person_instead(ts_env, sim, task_queue):
    policy = RunawayPolicy(max_repeats=2, on_detect="ask", groups=("operators",))
    async with probe(ts_env, task_queue, "looper_ask", "sim-openai:looper", policy) as handle:
        await _asked(handle)


async def _asked(handle: WorkflowHandle[Any, AgentResult]) -> None:
    await wait_for_status(handle, "waiting_approval")
    [ask] = (await handle.query(AgentWorkflow.status)).approvals
    assert ask.tool == "continue_run" and "runaway" in ask.rule

    await decide(handle, "omar", False, "it is stuck")
    result = await handle.result()
    assert result.outcome == "gave_up" and "rejected" in result.answer


async def test_a_failed_child_is_reported_to_the_parent(dev_env, dev_worker, task_queue):
    # On the dev server: the time-skipping server does not tell a parent its child was
    # terminated (the parent ends "timed out").
    run = AgentRun(agent="research", input={"question": "Q", "topics": ["wait", "design"]})
    handle = await start_run(dev_env.client, run, task_queue=task_queue)
    child = dev_env.client.get_workflow_handle(f"{handle.id}--call_0_spawn_agent")
    for _ in range(100):
        with contextlib.suppress(RPCError):
            await child.describe()
            break
        await asyncio.sleep(0.1)
    await wait_for_status(child, "waiting_event")
    await child.terminate("an operator stopped it")

    result = await handle.result()
    assert result.outcome == "completed"
    assert "not researched (failed)" in result.answer
    assert "design: three sources agree" in result.answer
