"""Watching a run live: its Workflow Stream carries every step (transcript entries and status
changes) from any offset, while it runs and after it ended, across continue-as-new, with no gap
and no repeat; `agentctl watch` renders it and exits with the run; nobody outside publishes."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.live import LiveEvent
from durable_agents._vocab.schemas import AgentRun
from durable_agents.client import AgentClient, start_run
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.live import PUBLISH_SIGNAL
from tests.helpers import wait_for_status

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


async def watched(agents: AgentClient, run_id: str, start: int = 0) -> list[tuple[int, LiveEvent]]:
    return [item async for item in agents.run(run_id).watch(start)]


async def start(client: Any, queue: str, agent: str, **fields: Any) -> str:
    run = AgentRun(agent=agent, principal="tester", **fields)
    handle = await start_run(client, run, f"{agent}-{uuid.uuid4().hex[:8]}", task_queue=queue)
    return handle.id


async def test_a_run_is_watched_live_and_read_again_from_any_offset(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    agents = AgentClient(dev_env.client)
    run_id = await start(dev_env.client, task_queue, "bench", input={"turns": 3})
    # Watched while it runs: every step, in order, ending with the run's end.
    live = await asyncio.wait_for(watched(agents, run_id), 60)
    offsets = [o for o, _ in live]
    assert offsets == list(range(len(live)))  # from 0, no gap, no repeat
    kinds = [e.kind for _, e in live]
    assert kinds[-1] == "status" and live[-1][1].status == "completed"
    assert kinds.count("tool_call") == 3 and kinds.count("tool_result") == 3
    assert "task" in kinds and [e.turn for _, e in live] == sorted(e.turn for _, e in live)

    # Read again after the end, whole or from an offset: the same steps.
    again = await asyncio.wait_for(watched(agents, run_id), 30)
    assert [(o, e.model_dump()) for o, e in again] == [(o, e.model_dump()) for o, e in live]
    resumed = await asyncio.wait_for(watched(agents, run_id, 4), 30)
    assert resumed == again[4:]

    # agentctl watch: a line per step; --json: one event a line; exit 0 for a completed run.
    address = dev_env.client.service_client.config.target_host
    for extra, check in (([], "◆ status: completed"), (["--json", "--from", "2"], '"offset": 2')):
        proc = await asyncio.create_subprocess_exec(
            AGENTCTL, "watch", run_id, "--address", address, *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert check in out.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["offset"] for r in rows] == offsets[2:]
    assert rows[-1]["status"] == "completed"


async def test_the_stream_goes_on_across_continue_as_new(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    agents = AgentClient(dev_env.client)
    run_id = await start(
        dev_env.client,
        task_queue,
        "reader",
        input={"turns": 6, "per_turn": 2, "chars": 2000},
        continue_after_bytes=10_000,
    )
    live = await asyncio.wait_for(watched(agents, run_id), 90)
    status = await dev_env.client.get_workflow_handle(run_id).query(AgentWorkflow.status)
    assert status.continued >= 1
    offsets = [o for o, _ in live]
    assert offsets == list(range(len(live)))  # one count across the chain's runs
    assert any("continued as new" in e.text for _, e in live)
    assert live[-1][1].status == "completed"


async def test_nobody_outside_publishes_into_a_run(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    run_id = await start(dev_env.client, task_queue, "onboarding", input=_hire())
    handle = dev_env.client.get_workflow_handle(run_id)
    await wait_for_status(handle, "waiting_event")
    forged = {
        "items": [{"topic": "progress", "data": "e30="}],
        "publisher_id": "x",
        "sequence": 1,
    }
    await handle.signal(PUBLISH_SIGNAL, forged)
    await wait_for_status(handle, "waiting_event")
    status = await handle.query(AgentWorkflow.status)
    assert any(
        r.handler == PUBLISH_SIGNAL and "publishes its own progress" in r.reason
        for r in status.refused
    )
    steps = await asyncio.wait_for(_until_waiting(AgentClient(dev_env.client), run_id), 30)
    assert all(e.kind != "status" or e.status != "completed" for e in steps)
    await handle.terminate("test over")
    # Ended another way than completed (terminated here): the watch says so by its exit code.
    address = dev_env.client.service_client.config.target_host
    code, out = await agentctl("watch", run_id, "--address", address)
    assert code == 1 and "◆ status: waiting_event" in out


async def test_run_follow_starts_and_watches(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    code, out = await agentctl(
        "run", "bench", "--as", "tester", "--input", '{"turns": 2}', "--follow",
        "--address", address, "--task-queue", task_queue,
    )  # fmt: skip
    assert code == 0, out
    assert out.startswith("started run bench-")
    assert out.count("→ echo(") == 2 and out.rstrip().endswith("◆ status: completed")


async def agentctl(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        AGENTCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _until_waiting(agents: AgentClient, run_id: str) -> list[LiveEvent]:
    seen = []
    async for _, event in agents.run(run_id).watch():
        seen.append(event)
        if event.kind == "status" and event.status == "waiting_event":
            return seen
    return seen


def _hire() -> dict[str, Any]:
    from tests.helpers import hire

    return hire()


@pytest.mark.parametrize("wire", ["sim-openai", "sim-anthropic"])
async def test_the_models_text_is_watched_as_it_is_written(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, wire: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`call_llm` streams the reply (the sim in chunks of 16 characters, 80 ms apart: a reply
    that takes longer than the first batch), in either wire format, and publishes its text as
    it comes; the reply in history is the whole one, and watchers see it once."""
    monkeypatch.setenv("DURABLE_AGENTS_SIM_STREAM_MS", "80")
    agents = AgentClient(dev_env.client)
    run_id = await start(
        dev_env.client,
        task_queue,
        "reader",
        input={"turns": 2, "chars": 100},
        model_route=[f"{wire}:reader"],
    )
    steps = await asyncio.wait_for(watched(agents, run_id), 60)
    result = await agents.run(run_id).result()
    pieces = [e for _, e in steps if e.kind == "text"]
    assert len(pieces) >= 2 and all(e.data == {"attempt": 1} for e in pieces)
    last_turn = max(e.turn for e in pieces)
    written = "".join(e.text for e in pieces if e.turn == last_turn)
    assert written == result.answer  # as written, piece by piece, then whole in the record
    kinds = [e.kind for _, e in steps]
    assert kinds.index("text") < kinds.index("assistant")  # written before the step is taken

    address = dev_env.client.service_client.config.target_host
    code, out = await agentctl("watch", run_id, "--address", address)
    assert code == 0 and out.count(result.answer) == 1  # written once, not again as a step


async def test_a_reply_whole_before_its_words_are_due_sends_no_text(
    dev_env: WorkflowEnvironment, sim: Any
) -> None:
    """A reply whole before its words are due (DURABLE_AGENTS_LIVE_TEXT_AFTER_MS, here 5 s,
    so that a busy machine cannot make the sim's instant reply late) sends the run no piece (no
    signal, no workflow task): its step, with the whole text, comes a moment later, and a
    watcher reads the words there, once."""
    from durable_agents.settings import Settings
    from durable_agents.workers.main import build_worker

    agents = AgentClient(dev_env.client)
    queue = f"hold-{uuid.uuid4().hex[:6]}"
    settings = Settings(live_text_after_ms=5000)
    async with build_worker(dev_env.client, queue, settings=settings):
        run_id = await start(dev_env.client, queue, "reader", input={"turns": 2, "chars": 100})
        steps = await asyncio.wait_for(watched(agents, run_id), 60)
        address = dev_env.client.service_client.config.target_host
        code, out = await agentctl("watch", run_id, "--address", address)  # a worker answers
    result = await agents.run(run_id).result()
    assert [e for _, e in steps if e.kind == "text"] == []
    assert [e.text for _, e in steps if e.kind == "assistant"][-1] == result.answer
    signals = [
        e
        async for e in dev_env.client.get_workflow_handle(run_id).fetch_history_events()
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == []
    assert code == 0 and out.count(result.answer) == 1


async def test_a_reply_cut_mid_stream_is_retried_and_watchers_drop_the_partial_text(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, fault: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from tests.helpers import approve_pending

    monkeypatch.setenv("DURABLE_AGENTS_SIM_STREAM_MS", "80")  # each attempt past a first batch

    agents = AgentClient(dev_env.client)
    run_id = await start(dev_env.client, task_queue, "reader", input={"turns": 1, "email_at": 1})
    handle = dev_env.client.get_workflow_handle(run_id)
    await wait_for_status(handle, "waiting_approval")
    fault("model:reader", "cut_stream", times=1)  # the next reply, the final words, stops half-way
    await approve_pending(handle, approver="olga")
    steps = await asyncio.wait_for(watched(agents, run_id), 60)
    result = await agents.run(run_id).result()
    assert result.outcome == "completed"
    pieces = [e for _, e in steps if e.kind == "text" and e.turn == steps[-1][1].turn]
    first = "".join(e.text for e in pieces if e.data["attempt"] == 1)
    second = "".join(e.text for e in pieces if e.data["attempt"] == 2)
    assert first and result.answer.startswith(first) and len(first) < len(result.answer)
    assert second == result.answer  # the retry wrote it whole; the record has it once

    address = dev_env.client.service_client.config.target_host
    code, out = await agentctl("watch", run_id, "--address", address)
    assert code == 0 and "(attempt 2: the text above was not the reply)" in out


async def test_a_forged_piece_of_text_is_refused_and_watchers_read_on(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str
) -> None:
    """Text from outside must be a text LiveEvent: an item of another shape would make every
    watcher fail to read the stream, so it is refused and recorded, and watching goes on."""
    import base64

    from temporalio.api.common.v1 import Payload

    run_id = await start(dev_env.client, task_queue, "onboarding", input=_hire())
    handle = dev_env.client.get_workflow_handle(run_id)
    await wait_for_status(handle, "waiting_event")
    junk = Payload(metadata={"encoding": b"json/plain"}, data=b'{"not": "an event"}')
    item = {"topic": "text", "data": base64.b64encode(junk.SerializeToString()).decode()}
    await handle.signal(PUBLISH_SIGNAL, {"items": [item], "publisher_id": "x", "sequence": 1})
    refused = [
        e
        async for _, e in _steps_until(AgentClient(dev_env.client), run_id, "refused")
        if e.kind == "refused"
    ]
    assert refused and "not a text LiveEvent" in refused[0].text
    await handle.terminate("test over")


async def _steps_until(agents: AgentClient, run_id: str, kind: str) -> AsyncIterator[Any]:
    async def read() -> list[Any]:
        seen = []
        async for item in agents.run(run_id).watch():
            seen.append(item)
            if item[1].kind == kind:
                return seen
        return seen

    for item in await asyncio.wait_for(read(), 30):
        yield item
