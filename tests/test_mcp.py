"""MCP tools as durable as our own, with MCP servers nobody here wrote: the reference server
`mcp-server-time` over stdio, and a FastMCP server over streamable HTTP (tests/mcp_servers/)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer

from durable_agents import AgentSet, AgentSpec, MCPServer, Stdio
from durable_agents._catalog import Catalog
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import (
    AgentResult,
    AgentStatus,
    Identity,
    MCPListRequest,
    MCPTarget,
    ResultHandling,
    ToolRequest,
)
from durable_agents.activities.mcp import MCPConnections, MCPRunner
from durable_agents.starters.devserver import free_port
from durable_agents.testing import AgentEnvironment
from durable_agents.workers.plugin import interceptors, sandbox
from durable_agents.workflows.agent import AgentWorkflow
from tests.mcp_agents import AGENTS, MODELS, PEOPLE, Zone
from tests.people import signed_in_env

ROOT = Path(__file__).parent.parent
AGENTCTL = str(Path(sys.executable).parent / "agentctl")


def scheduled(history: Any, activity: str) -> int:
    return sum(
        1
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    )


def task_failures(history: Any) -> list[str]:
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for e in history.events
        if e.HasField("workflow_task_failed_event_attributes")
    ]


# --- the reference time server over stdio, inside a run -----------------------------------------


async def test_the_reference_time_server_answers_inside_a_run(ts_env: WorkflowEnvironment) -> None:
    async with AgentEnvironment(AGENTS, models=MODELS, env=ts_env) as agents:
        handle = await agents.start("clock", Zone(timezone="UTC").model_dump())
        result = await handle.result()
        history = await handle.fetch_history()
        status = await handle.query("status", result_type=AgentStatus)
        transcript = await handle.query("transcript", result_type=list[Any])
    assert result.outcome == "completed", result.answer
    assert result.answer.startswith("it is ") and " in UTC, a " in result.answer
    # Listed once, in history; `convert_time` denied by the spec; a schema check went back to
    # the model; the real call answered.
    assert scheduled(history, "list_mcp_tools") == 1
    assert scheduled(history, "call_mcp_tool") == 1
    notes = [e["text"] for e in transcript]
    assert any("MCP server time: tools get_current_time (read_only)" in n for n in notes), notes
    assert any("bad arguments for get_current_time" in n and "timezone" in n for n in notes)
    assert status.status == "completed" and not task_failures(history)


# --- failures, straight through the activity ------------------------------------------------------

UNRULY = MCPServer(
    name="unruly",
    transport=Stdio(command=sys.executable, args=("-m", "tests.mcp_servers.unruly"), cwd=str(ROOT)),
)
PROBE = AgentSpec(
    name="probe",
    version="1",
    description="Calls an unruly server.",
    system_prompt="-",
    model_route=("scripted:probe",),
    tools=(),
    input_model=Zone,
    mcp_servers=(UNRULY,),
)


@contextlib.asynccontextmanager
async def unruly(tmp_path: Path) -> AsyncIterator[tuple[MCPRunner, ActivityEnvironment]]:
    """The MCP activities of a worker whose agent uses the unruly server, for as long as the
    worker would run (its MCP sessions close after)."""
    os.environ["DURABLE_AGENTS_STATE_DIR"] = str(tmp_path)
    os.environ["DURABLE_AGENTS_MAX_TOOL_RESULT_BYTES"] = "5000"
    connections = MCPConnections(Catalog.build([AgentSet((PROBE,), directory=PEOPLE)]))
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, start_to_close_timeout=timedelta(seconds=4))
    try:
        async with connections.running():
            yield MCPRunner(connections), env
    finally:
        del (
            os.environ["DURABLE_AGENTS_STATE_DIR"],
            os.environ["DURABLE_AGENTS_MAX_TOOL_RESULT_BYTES"],
        )


def calling(tool: str, **arguments: Any) -> ToolRequest:
    return ToolRequest(
        tool=tool,
        arguments=arguments,
        idempotency_key=f"probe-1/{tool}",
        identity=Identity(agent="probe", agent_version="1", workflow_id="probe-1", principal="t"),
        result=ResultHandling(tool_call_id=tool, inline_bytes=16_000),
        mcp=MCPTarget(agent="probe", server="unruly", tool=tool, side_effect="read_only"),
    )


async def failure(runner: MCPRunner, env: ActivityEnvironment, tool: str, **args: Any) -> Any:
    with pytest.raises(ApplicationError) as caught:
        await env.run(runner.call_mcp_tool, calling(tool, **args))
    return caught.value


async def misbehave(tmp_path: Path) -> int:
    """Every way a server can fail, each with its taxonomy type; the last server's pid."""
    async with unruly(tmp_path) as (runner, env):
        return await failures(runner, env)


async def failures(runner: MCPRunner, env: ActivityEnvironment) -> int:
    listed = await env.run(runner.list_mcp_tools, MCPListRequest(agent="probe", server="unruly"))
    # No annotations: MCP's default is destructive, so a person approves by default.
    assert {t.name: t.side_effect for t in listed.tools}["echo"] == "irreversible"
    first = await env.run(runner.call_mcp_tool, calling("echo", text="hi"))
    pid = first.output["result"].split()[-1]

    crashed = await failure(runner, env, "crash")
    assert (crashed.type, crashed.non_retryable) == (f.TOOL_TRANSIENT, False), crashed.message
    again = await env.run(runner.call_mcp_tool, calling("echo", text="back"))
    assert again.output["result"].startswith("back from ")
    assert again.output["result"].split()[-1] != pid  # restarted: a new process answers

    started = time.monotonic()
    hung = await failure(runner, env, "hang")
    assert (hung.type, hung.non_retryable) == (f.TIMEOUT, False), hung.message
    assert time.monotonic() - started < 10

    refused = await failure(runner, env, "refuse", why="not on a Sunday")
    assert (refused.type, refused.non_retryable) == (f.TOOL_REJECTED, True)
    assert "not on a Sunday" in refused.message

    huge = await failure(runner, env, "huge", size=20_000)
    assert (huge.type, huge.non_retryable) == (f.PAYLOAD_TOO_LARGE, True), huge.message

    bad = await failure(runner, env, "nonexistent")
    assert bad.type in (f.TOOL_REJECTED, f.TOOL_CONTRACT_VIOLATION), bad.message
    last = (await env.run(runner.call_mcp_tool, calling("echo", text="bye"))).output["result"]
    return int(last.split()[-1])


async def test_failures_map_and_the_server_stops_with_the_worker(tmp_path: Path) -> None:
    pid = await misbehave(tmp_path)
    # The worker's MCP sessions closed when it stopped: the stdio server is gone.
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the stdio server {pid} outlived its worker")


# --- a destructive tool over streamable HTTP: approval, SIGKILL in flight, a changed server -----


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    state: dict[str, Any] = {"port": port, "db": tmp_path / "ledger.sqlite3", "procs": []}

    def start(version: int, **extra: str) -> None:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.mcp_servers.ledger",
                str(port),
                str(state["db"]),
                str(version),
            ],
            cwd=ROOT,
            env=os.environ | {"LEDGER_DELAY": "3"} | extra,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state["procs"].append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the ledger MCP server did not start")

    def stop() -> None:
        for proc in state["procs"]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    state["start"], state["stop"] = start, stop
    start(1)
    yield state
    stop()


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


async def until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.slow  # `make test-slow`
async def test_a_destructive_mcp_tool_is_approved_and_made_once_across_a_sigkill(
    dev_env: WorkflowEnvironment, ledger: dict[str, Any], task_queue: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    env = os.environ | {
        "TEMPORAL_ADDRESS": address,
        "LEDGER_URL": f"http://127.0.0.1:{ledger['port']}/mcp",
        "DURABLE_AGENTS_PLUGINS": "tests.mcp_agents",
        "PYTHONPATH": str(ROOT),
    }
    workers: list[subprocess.Popen[bytes]] = []

    def worker() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp_agents", task_queue],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        workers.append(proc)
        return proc

    listing = subprocess.run(
        [AGENTCTL, "agents", "payout", "--offline"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert "MCP server ledger: $LEDGER_URL ({}); tools listed by each run; rename {'lookup': " \
        "'account_details'}" in listing.stdout, listing.stdout + listing.stderr  # fmt: skip
    try:
        first = worker()
        args = ["run", "payout", "--as", "alice", "--task-queue", task_queue,
                "--input", '{"account": "A-1", "amount": "250.00"}']  # fmt: skip
        out = subprocess.run(
            [AGENTCTL, *args], env=signed_in_env(args, env), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        run_id = out.stdout.split("started run ")[1].split()[0]
        handle: WorkflowHandle[Any, AgentResult] = dev_env.client.get_workflow_handle(
            run_id, result_type=AgentResult
        )

        async def waiting() -> bool:
            status = await handle.query("status", result_type=AgentStatus)
            return status.status == "waiting_approval"

        await until(waiting)
        # The server changes its tools while the run waits: the run keeps the list it recorded.
        ledger["stop"]()
        ledger["start"](2)
        shown = subprocess.run(
            [AGENTCTL, "approvals", "show", run_id], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert "transfer" in shown.stdout and "A-1" in shown.stdout, shown.stdout + shown.stderr
        args = ["approve", run_id, "--as", "olga"]
        approved = subprocess.run(
            [AGENTCTL, *args], env=signed_in_env(args, env), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stdout + approved.stderr

        async def in_flight() -> bool:
            return bool(rows(ledger["db"], "select 1 from calls where tool = 'transfer'"))

        await until(in_flight)
        first.send_signal(signal.SIGKILL)  # mid-call: the server is still working on it
        first.wait()
        worker()
        result = await asyncio.wait_for(handle.result(), 90)
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()

    key = f"{run_id}/"
    calls = rows(ledger["db"], "select key from calls where tool = 'transfer'")
    effects = rows(ledger["db"], "select key, account, amount from effects")
    assert result.outcome == "completed" and result.answer.startswith("transfer: sent"), result
    assert len(calls) >= 2 and {c[0] for c in calls} == {effects[0][0]}  # retried, one key
    assert (
        len(effects) == 1 and effects[0][0].startswith(key) and effects[0][1:] == ("A-1", "250.00")
    )
    history = await handle.fetch_history()
    assert scheduled(history, "list_mcp_tools") == 1  # once per run, not per worker
    assert not task_failures(history)
    # The audit trail has the approval and the side effect, as for a native tool.
    trail = subprocess.run(
        [AGENTCTL, "audit", run_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert "transfer" in trail.stdout and "olga" in trail.stdout, trail.stdout + trail.stderr
    # And the history replays against today's code, the server's new tool list notwithstanding.
    replay = Replayer(
        workflows=[AgentWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandbox(),
        interceptors=interceptors(Catalog.build([AGENTS])),
    )
    replayed = await replay.replay_workflow(history)
    assert replayed.replay_failure is None


# --- start-up: what a worker needs, in one line -------------------------------------------------

MCP_PLUGINS = {
    "needs_secret": """
from pydantic import BaseModel
from durable_agents import AgentSpec, FromEnv, MCPServer, StreamableHTTP
class In(BaseModel):
    x: str
AGENTS = [AgentSpec(name="secretive", version="1", description="d", system_prompt="p",
    model_route=("sim-openai:echo",), tools=(), input_model=In,
    mcp_servers=(MCPServer(name="ledger", transport=StreamableHTTP(
        url="http://127.0.0.1:1/mcp",
        headers={"Authorization": FromEnv("NOPE_TOKEN", "Bearer {}")})),))]
""",
    "twice": """
from pydantic import BaseModel
from durable_agents import AgentSpec, MCPServer, Stdio
class In(BaseModel):
    x: str
S = MCPServer(name="time", transport=Stdio(command="mcp-server-time"))
AGENTS = [AgentSpec(name="twice", version="1", description="d", system_prompt="p",
    model_route=("sim-openai:echo",), tools=(), input_model=In, mcp_servers=(S, S))]
""",
}


async def test_an_mcp_server_a_worker_cannot_serve_stops_it_in_one_line(tmp_path: Path) -> None:
    for name, text in MCP_PLUGINS.items():
        (tmp_path / f"{name}.py").write_text(text)
    env = os.environ | {"PYTHONPATH": str(tmp_path), "TEMPORAL_ADDRESS": "127.0.0.1:1"}

    def agentctl(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENTCTL, *args], env=env | extra, capture_output=True, text=True, timeout=60
        )

    worker = agentctl("worker", "--plugin", "needs_secret")
    assert worker.returncode == 1 and worker.stderr.strip().splitlines() == [
        "error: MCP server ledger: environment variable NOPE_TOKEN is not set on this worker"
    ], worker.stderr
    # The CLI holds no secret and needs none: it lists the agent.
    listed = agentctl("agents", "secretive", "--offline", DURABLE_AGENTS_PLUGINS="needs_secret")
    assert listed.returncode == 0 and "MCP server ledger: http://127.0.0.1:1/mcp" in listed.stdout
    assert "NOPE_TOKEN" not in listed.stdout
    twice = agentctl("worker", "--plugin", "twice")
    assert twice.returncode == 1 and "two MCP servers share a name" in twice.stderr, twice.stderr


async def test_a_server_that_cannot_be_listed_parks_the_run(ts_env: WorkflowEnvironment) -> None:
    ghost = MCPServer(name="ghost", transport=Stdio(command="/nonexistent/mcp"), max_attempts=2)
    spec = dataclasses.replace(PROBE, name="haunted", mcp_servers=(ghost,))
    async with AgentEnvironment(
        AgentSet((spec,), directory=PEOPLE), models=MODELS, env=ts_env
    ) as agents:
        run = await agents.run("haunted", {"timezone": "UTC"})
    assert run.finished is None and run.status.status == "needs_attention"
    assert "listing the tools of MCP server ghost failed: ToolTransient" in str(
        run.status.last_error
    ), run.status.last_error


async def test_two_tools_with_one_name_stop_the_listing(tmp_path: Path) -> None:
    async with unruly(tmp_path) as (runner, env):
        request = MCPListRequest(agent="probe", server="unruly", native=["echo"])
        with pytest.raises(ApplicationError) as caught:
            await env.run(runner.list_mcp_tools, request)
    assert caught.value.type == f.TOOL_CONTRACT_VIOLATION and caught.value.non_retryable
    assert "tool 'echo' clashes with a tool the agent already has" in caught.value.message


async def test_a_restarted_stateful_server_is_reconnected(ledger: dict[str, Any]) -> None:
    """A server that forgot the worker's session (it restarted) costs one transient failure:
    the retry opens a new session, with its headers read again."""
    ledger["stop"]()
    ledger["start"](1, LEDGER_STATEFUL="1")
    os.environ["LEDGER_URL"] = f"http://127.0.0.1:{ledger['port']}/mcp"
    connections = MCPConnections(Catalog.build([AGENTS]))
    runner, env = MCPRunner(connections), ActivityEnvironment()
    request = ToolRequest(
        tool="account_details",
        arguments={"account": "A-9"},
        idempotency_key="payout-1/c1",
        identity=Identity(agent="payout", agent_version="1", workflow_id="payout-1", principal="t"),
        mcp=MCPTarget(agent="payout", server="ledger", tool="lookup", side_effect="read_only"),
    )
    try:
        async with connections.running():
            assert (await env.run(runner.call_mcp_tool, request)).output["owner"] == "ACME"
            ledger["stop"]()
            ledger["start"](1, LEDGER_STATEFUL="1")
            with pytest.raises(ApplicationError) as caught:
                await env.run(runner.call_mcp_tool, request)
            assert (caught.value.type, caught.value.non_retryable) == (f.TOOL_TRANSIENT, False)
            assert (await env.run(runner.call_mcp_tool, request)).output["owner"] == "ACME"
    finally:
        del os.environ["LEDGER_URL"]


def test_a_schema_that_cannot_be_used_is_never_fetched_nor_fails_the_workflow() -> None:
    from durable_agents._vocab.carried import CarriedState, MCPState
    from durable_agents._vocab.schemas import MCPTool
    from durable_agents.activities.mcp import _unusable
    from durable_agents.workflows import mcp_tools

    broken = [
        {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}}},
        {"$ref": "#/$defs/missing"},
        {"type": 5},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
    ]
    for schema in broken:
        tool = MCPTool(
            server="s", name="t", exposed="t", input_schema=schema, side_effect="read_only"
        )
        state = CarriedState(mcp=MCPState(tools=[tool]))
        assert mcp_tools.problems(state, "t", {"a": "x"}) is None  # the server judges
    assert "refers outside itself" in str(_unusable("t", broken[0]))
    assert "not valid JSON Schema" in str(_unusable("t", broken[2]))
    assert "not valid JSON Schema" in str(_unusable("t", broken[3]))
    assert "rename it" in str(_unusable("two words", {"type": "object"}))
    assert _unusable("fine", {"type": "object", "properties": {"a": {"type": "string"}}}) is None
