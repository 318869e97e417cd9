"""Runaway variants (idle turns, asking a person) and a sub-agent that fails."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
from temporalio.service import RPCError

from durable_agents._catalog import AGENTS
from durable_agents._spec import RunawayPolicy
from sim.agents.bench import BENCH
from starters import ops
from tests.helpers import wait_for_status
from workflows.agent import AgentWorkflow
from workflows.models import AgentRun, Decision


def probe(monkeypatch: pytest.MonkeyPatch, name: str, route: str, policy: RunawayPolicy) -> None:
    spec = dataclasses.replace(BENCH, name=name, model_route=(route,), runaway=policy)
    monkeypatch.setitem(AGENTS, name, spec)  # the worker reads the same registry


async def test_turns_without_progress_are_noticed(ts_env, ts_worker, task_queue, monkeypatch):
    probe(
        monkeypatch,
        "pingpong",
        "sim-openai:pingpong",
        RunawayPolicy(max_repeats=9, max_idle_turns=2),
    )
    run = AgentRun(agent="pingpong", input={"turns": 50})
    handle = await ops.start_run(ts_env.client, run, task_queue=task_queue)
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "2 turns in a row without a new successful tool call" in (status.last_error or "")
    assert status.turn == 4  # ping, pong: progress; ping, pong again: none
    await handle.terminate("done")


async def test_a_runaway_can_ask_a_person_instead(ts_env, ts_worker, task_queue, monkeypatch):
    probe(
        monkeypatch,
        "looper_ask",
        "sim-openai:looper",
        RunawayPolicy(max_repeats=2, on_detect="ask", groups=("operators",)),
    )
    run = AgentRun(agent="looper_ask", input={"turns": 50})
    handle = await ops.start_run(ts_env.client, run, task_queue=task_queue)
    await wait_for_status(handle, "waiting_approval")
    [ask] = (await handle.query(AgentWorkflow.status)).approvals
    assert ask.tool == "continue_run" and "runaway" in ask.rule

    await handle.execute_update(
        AgentWorkflow.decide, Decision(approver="omar", approve=False, reason="it is stuck")
    )
    result = await handle.result()
    assert result.outcome == "gave_up" and "rejected" in result.answer


async def test_a_failed_child_is_reported_to_the_parent(dev_env, dev_worker, task_queue):
    # On the dev server: the time-skipping server does not tell a parent its child was
    # terminated (the parent ends "timed out").
    run = AgentRun(agent="research", input={"question": "Q", "topics": ["wait", "design"]})
    handle = await ops.start_run(dev_env.client, run, task_queue=task_queue)
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
