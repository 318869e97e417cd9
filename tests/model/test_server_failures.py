"""The real server's failures, each mapped by the taxonomy: not running when the run starts,
killed mid-call and restarted, slower than the call's heartbeat, its context window exceeded.
Each test starts a llama.cpp server of its own (on a port of its own) and stops it by pid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle

from bench.real_model import LlamaServer
from durable_agents.testing import AgentEnvironment
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.turns import LLM_HEARTBEAT

pytestmark = pytest.mark.timeout(300)
HELLO = {"text": "Hello! How are you today?"}


async def pending_call(
    handle: WorkflowHandle[Any, Any], ready: Callable[[Any], bool], timeout: float = 60
) -> Any:
    """The run's pending call_llm once `ready` says so (Temporal's own view of the attempt)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            if pending.activity_type.name == "call_llm" and ready(pending):
                return pending
        await asyncio.sleep(0.1)
    raise AssertionError("the model call never got there")


def in_flight(pending: Any) -> bool:
    return bool(pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED)


def calls(history: Any) -> list[Any]:
    """call_llm's started events: each records its attempt and the last failure before it."""
    scheduled = {
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_llm"
    }
    return [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


def kinds(failure: Any) -> list[tuple[str, str]]:
    """The taxonomy types in a failure and its causes, outermost first (the server may wrap the
    activity's failure: "Failure exceeds size limit")."""
    found = []
    while failure is not None and failure.ByteSize():
        if failure.HasField("application_failure_info"):
            found.append((failure.application_failure_info.type, failure.message))
        failure = failure.cause if failure.HasField("cause") else None
    return found


def no_task_failures(history: Any) -> None:
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


async def test_a_server_not_running_when_the_run_starts(
    agents: AgentEnvironment, tmp_path: Path
) -> None:
    server = LlamaServer(log=tmp_path / "llama.log")  # its port, nothing listening yet
    handle = await agents.start("echo", HELLO, model_route=[server.route])
    try:
        waiting = await pending_call(handle, lambda p: p.attempt >= 2)
        assert kinds(waiting.last_failure)[0] == (
            "ProviderUnavailable",
            "cannot reach openai-compatible: Connection error.",
        )
        server.start()  # the operators bring it up: the next attempt reaches it
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        server.stop()
    assert result.outcome == "completed" and result.answer.strip()
    history = await handle.fetch_history()
    no_task_failures(history)
    [call] = calls(history)
    assert call.attempt >= 2
    assert kinds(call.last_failure)[0][0] == "ProviderUnavailable"


async def test_the_server_killed_mid_call_and_restarted(
    agents: AgentEnvironment, tmp_path: Path
) -> None:
    server = LlamaServer(log=tmp_path / "llama.log").start()
    restarted = LlamaServer(port=server.port, log=tmp_path / "llama-again.log")
    try:
        server.freeze()  # it takes the request (the kernel's backlog) and answers nothing
        handle = await agents.start("echo", HELLO, model_route=[server.route])
        await pending_call(handle, in_flight)
        await asyncio.sleep(1)  # the request is on its way
        server.kill()  # mid-call: the connection is reset
        restarted.start()  # same port, a fresh process
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        server.stop()
        restarted.stop()
    assert result.outcome == "completed" and result.answer.strip()
    history = await handle.fetch_history()
    no_task_failures(history)
    [call] = calls(history)
    assert call.attempt >= 2  # the call was retried, and the run went on
    assert kinds(call.last_failure)[0][0] == "ProviderUnavailable"


async def test_a_server_slower_than_the_calls_heartbeat(
    agents: AgentEnvironment, tmp_path: Path
) -> None:
    server = LlamaServer(log=tmp_path / "llama.log").start()
    slow = LLM_HEARTBEAT.total_seconds() * 1.5
    try:
        server.freeze()
        handle = await agents.start("echo", HELLO, model_route=[server.route])
        started = await pending_call(handle, in_flight)
        await asyncio.sleep(slow)  # longer than the heartbeat timeout: the call heartbeats
        beating = await pending_call(handle, lambda p: p.HasField("last_heartbeat_time"))
        assert beating.attempt == started.attempt == 1
        assert "waiting for smollm2" in str(beating.heartbeat_details)
        server.thaw()
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        server.stop()
    assert result.outcome == "completed" and result.answer.strip()
    history = await handle.fetch_history()
    no_task_failures(history)
    [call] = calls(history)
    assert call.attempt == 1  # one slow attempt, never timed out nor retried
    completed = next(
        e for e in history.events if e.HasField("activity_task_completed_event_attributes")
    )
    took = completed.event_time.ToDatetime() - history.events[0].event_time.ToDatetime()
    assert took.total_seconds() >= slow


async def test_the_context_window_exceeded(agents: AgentEnvironment, tmp_path: Path) -> None:
    """A server started with a 256-token window: a text that does not fit is refused with a 400
    the taxonomy maps to ContextWindowExceeded; there is nothing older to compact, so the run
    parks for an operator, having retried nothing. Streamed, the server answers 200 and ends
    the stream empty: asked again unstreamed, it says the same."""
    server = LlamaServer(n_ctx=256, log=tmp_path / "llama.log").start()
    text = " ".join(["The lighthouse keeper counted the ships that passed at night."] * 40)
    try:
        plain = await agents.start("summary", {"text": text}, model_route=[server.route])
        streamed = await agents.start("narrator", {"topic": text}, model_route=[server.route])
        for handle in (plain, streamed):
            status = await until_parked(handle)
            assert "ContextWindowExceeded" in str(status.last_error), status.last_error
            assert "maximum context length is 256 tokens" in str(status.last_error)
            history = await handle.fetch_history()
            no_task_failures(history)
            [call] = calls(history)
            assert call.attempt == 1  # not retried: retrying cannot help
            await handle.terminate("test over")
    finally:
        server.stop()


async def until_parked(handle: WorkflowHandle[Any, Any]) -> Any:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = await handle.query(AgentWorkflow.status)
        if status.status == "needs_attention":
            return status
        await asyncio.sleep(0.2)
    raise AssertionError("the run did not park")
