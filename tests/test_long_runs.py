"""Runs that last and runs that wait (issue 15): the conversation carried by reference across
continue-as-new, recovered from history when the store lost it, old carried inputs still taken,
chains that replay, and a crowd of waiting runs woken at once. Dev server, real sim, SQLite store.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.sleeper import AGENTS, EVENT, MODELS, all_waiting, start
from durable_agents._vocab import chain, names
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import AgentResult, AgentRun, EventSignal
from durable_agents.activities import store as store_module
from durable_agents.activities.store import SQLiteStore
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from tests.handover import HandsOver
from tests.helpers import approve_pending, wait_for_status
from tests.test_history import carried_runs, failures, finish, runs, scheduled, start_reader
from tests.test_replay import replayer

HISTORIES = Path(__file__).parent / "histories" / "0.2.0"


def carried_bytes(run: AgentRun) -> int:
    return pydantic_data_converter.payload_converter.to_payloads([run])[0].ByteSize()


async def test_a_conversation_larger_than_a_payload_continues_as_new_by_reference(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    # 40 turns of 2,000 characters: about 90 KB of conversation, with a payload limit of
    # 40 KB. Carried as content, the run could not continue as new past the first few turns.
    handle = await start_reader(
        dev_env.client,
        task_queue,
        input={"turns": 40, "chars": 2000},
        continue_after_bytes=10_000,
        max_payload_bytes=40_000,
    )
    result = await finish(handle)
    assert result.answer == "read 40 documents: 80000 characters in full, 0 previews, 0 errors"
    histories = await runs(dev_env.client, handle)
    carried = carried_runs(histories)
    assert len(carried) >= 5
    sizes = [carried_bytes(run) for run in carried]
    # Bounded, not growing: the latest 50 transcript entries and the live stream's latest 10
    # events (workflows/live.py), well inside the run's own payload limit.
    assert max(sizes) < 36_000 and sizes[-1] - sizes[-2] < 2_000, sizes
    lengths = [run.carried.store.base_length for run in carried if run.carried]
    assert lengths == sorted(lengths) and lengths[-1] > 60  # the chain head names the rest
    assert all(run.carried and len(run.carried.messages) <= 3 for run in carried)
    # The conversation itself is over the limit: by content it could not have been carried.
    last = carried[-1].carried
    assert last is not None and last.store.base is not None
    url = os.environ["DURABLE_AGENTS_STORE_URL"]
    store = SQLiteStore(Path(url.removeprefix("sqlite:///")))
    hashes = await store.walk(last.store.base, last.store.base_length)
    assert hashes is not None
    assert sum(len(b) for b in (await store.get(hashes)).values()) > 40_000
    assert failures(histories, f.CONVERSATION_MISSING) == 0
    assert scheduled(histories, "run_tool") == 40  # each document read once, across runs
    # Every run of the chain replays against today's code.
    for history in histories:
        replayed = await replayer(AgentWorkflow).replay_workflow(history)
        assert replayed.replay_failure is None


async def test_a_store_wiped_after_a_continue_as_new_is_recovered_from_history(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    handle = await start_reader(
        dev_env.client,
        task_queue,
        input={"turns": 12, "chars": 2000, "email_at": 10},
        continue_after_bytes=10_000,
    )
    await wait_for_status(handle, "waiting_approval", timeout=60)
    assert (await handle.query(AgentWorkflow.status)).continued >= 1
    # A wiped disk, and a worker that remembers nothing (a new process).
    url = os.environ["DURABLE_AGENTS_STORE_URL"]
    await SQLiteStore(Path(url.removeprefix("sqlite:///"))).clear()
    store_module._cached.cache_clear()
    await approve_pending(handle, approver="olga")
    result = await finish(handle)
    assert result.answer == "read 12 documents: 24000 characters in full, 0 previews, 0 errors"
    histories = await runs(dev_env.client, handle)
    assert scheduled(histories, "recover_conversation") >= 1
    transcript = await handle.query(AgentWorkflow.transcript)
    assert any("recovered from earlier runs' histories" in e.text for e in transcript)


async def test_a_run_continued_with_the_old_carried_format_goes_on(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str
) -> None:
    """What a run in flight on 0.2.0 hands over (the whole conversation as content) is still
    taken by today's code, and the chain goes on by reference from there."""
    recorded = WorkflowHistory.from_json(
        "reader_continued", (HISTORIES / "reader_continued_run1.json").read_text()
    )
    old = carried_runs([recorded])[0]
    assert old.carried is not None and old.carried.store.base is None
    assert len(old.carried.messages) > 3  # the old format: every message as content
    async with build_worker(dev_env.client, task_queue, workflows=[HandsOver]):
        handle = await dev_env.client.start_workflow(
            HandsOver.run, old, id=f"reader-old-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        agent = dev_env.client.get_workflow_handle(handle.id, result_type=AgentResult)
        for _ in range(200):  # until the hand-over has continued as new into the agent
            if (await agent.describe()).workflow_type == "AgentWorkflow":
                break
            await asyncio.sleep(0.05)
        await wait_for_status(agent, "waiting_approval", timeout=60)
        await approve_pending(agent, approver="olga")
        result = await finish(agent)
    assert result.outcome == "completed" and result.answer.startswith("read ")


async def test_200_waiting_runs_wake_on_a_burst_of_events_and_complete(
    dev_env: WorkflowEnvironment,
) -> None:
    queue = f"sleepers-{uuid.uuid4().hex[:8]}"
    n = 200
    async with build_worker(dev_env.client, queue, agents=[AGENTS], models=MODELS):
        handles = await asyncio.gather(
            *(start(dev_env.client, queue, f"sleeper-{uuid.uuid4().hex[:8]}") for _ in range(n))
        )
        await all_waiting(dev_env.client, queue, n, timeout=120)
        started = time.monotonic()
        await asyncio.gather(
            *(h.signal(names.EVENT_SIGNAL, EventSignal(name=EVENT)) for h in handles)
        )
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120)
        took = time.monotonic() - started
    assert [r.outcome for r in results] == ["completed"] * n
    assert all(r.answer == "woke: received" for r in results), results[0].answer
    assert took < 120


def test_the_carried_base_is_the_chain_head_of_the_messages_it_names() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    hashes = [chain.digest(chain.canonical(m)) for m in messages]
    whole = chain.heads(hashes)
    assert chain.heads(hashes[1:], root=whole[0]) == whole[1:]
    assert json.loads(chain.canonical({"x": 1})) == {"x": 1}
