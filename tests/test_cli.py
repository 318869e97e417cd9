"""`agentctl` driven as an operator drives it: the happy path on the dev server, then bad input.

The CLI runs `asyncio.run` inside; the session's event loop (which runs the dev worker) only turns
while an async test awaits, so CLI calls go through `asyncio.to_thread` from async tests. A sync
test would block the loop and the worker would never poll.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from durable_agents import _ops as ops
from durable_agents._discovery import discover
from durable_agents.settings import Settings
from durable_agents.starters.cli import app
from durable_agents.starters.devserver import free_port
from tests.helpers import hire
from tests.people import signed_in_env

RUNNER = CliRunner()
AGENTCTL = Path(sys.executable).parent / "agentctl"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`agentctl ARGS` in this process; a command that sends a person's message with `--as P`
    runs signed in as P (tests/people.py)."""
    env = signed_in_env(args, env)
    return RUNNER.invoke(app, list(args), env=env or None)


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """`agentctl ARGS` in a thread, so the session loop (and the worker on it) keeps running."""
    return await asyncio.to_thread(invoke, *args, env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def error(result: Result) -> str:
    """The one line the CLI printed for a refused request (and nothing on stdout)."""
    assert result.exit_code != 0, result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.stdout == ""
    return lines[0]


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers: a firewall, a wrong port behind a proxy."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"127.0.0.1:{server.getsockname()[1]}"


async def until_status(run: str, addr: str, want: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = json.loads(ok(await cli("status", run, "--address", addr, "--json")).stdout)
        if seen["status"] == want:
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run} still {seen.get('status')!r}, not {want!r}")


async def until_polled(env: WorkflowEnvironment, task_queue: str, timeout: float = 10) -> None:
    """A worker just started has not polled yet: wait until the server has seen it poll."""
    deadline = time.monotonic() + timeout
    while (await ops.pollers(env.client, task_queue) or 0) == 0:
        assert time.monotonic() < deadline, f"no worker polled {task_queue} within {timeout} s"
        await asyncio.sleep(0.1)


# --- the operator's day, on the dev server ----------------------------------------------------


async def test_onboarding_through_the_cli(dev_env: WorkflowEnvironment, dev_worker, task_queue):
    addr = address(dev_env)
    new_hire = json.dumps(hire(full_name="Grace Hopper"))
    await until_polled(dev_env, task_queue)
    started = ok(
        await cli(
            "run", "onboarding", "--input", new_hire, "--as", "ops-anna",
            "--task-queue", task_queue, "--address", addr,
        )
    )  # fmt: skip
    [line] = started.stdout.splitlines()
    assert line.startswith("started run onboarding-")
    run = line.removeprefix("started run ")
    assert "no worker polls" not in started.stderr

    status = await until_status(run, addr, "waiting_event")
    assert (status["agent"], status["principal"]) == ("onboarding", "ops-anna")
    text = ok(await cli("status", run, "--address", addr)).stdout
    assert "waiting for: event clearance_granted since" in text

    # Visibility is eventually consistent: give the search attribute a moment to land.
    for _ in range(50):
        listed = ok(await cli("list", "--status", "waiting_event", "--address", addr, "--json"))
        if run in [row["run"] for row in json.loads(listed.stdout)]:
            break
        await asyncio.sleep(0.2)
    assert run in [row["run"] for row in json.loads(listed.stdout)]
    table = ok(await cli("list", "--agent", "onboarding", "--status", "waiting_event",
                         "--address", addr)).stdout  # fmt: skip
    assert run in table and "waiting_event" in table
    not_yet = error(await cli("result", run, "--address", addr))
    assert f"run {run!r} is still running" in not_yet and "--wait" in not_yet

    sent = ok(await cli("signal", run, "clearance_granted", "--address", addr))
    assert sent.stdout.strip() == f"sent event clearance_granted to {run}"
    # The welcome email goes outside the company: HR approves it (see agents/onboarding.py).
    seen = await until_status(run, addr, "waiting_approval")
    assert "approval" in seen["waiting_for"] and "send_email" in seen["waiting_for"]
    ok(await cli("approve", run, "--as", "hana", "--address", addr))

    done = ok(await cli("result", run, "--wait", "--address", addr))
    assert done.stdout.startswith("outcome: completed after")
    as_json = json.loads(ok(await cli("result", run, "--address", addr, "--json")).stdout)
    assert as_json["outcome"] == "completed" and "Grace" in as_json["answer"]

    record = ok(await cli("transcript", run, "--address", addr)).stdout
    calls = ["create_mailbox", "order_laptop", "wait_for_event", "send_email"]
    positions = [record.index(f"→ {name}(") for name in calls]
    assert positions == sorted(positions), record
    assert "event clearance_granted received" in record
    entries = json.loads(ok(await cli("transcript", run, "--address", addr, "--json")).stdout)
    tool_calls = [e["text"].split("(")[0] for e in entries if e["kind"] == "tool_call"]
    assert tool_calls == calls

    finished = error(await cli("signal", run, "clearance_granted", "--address", addr))
    assert f"run {run!r} has finished (completed); it takes no more signals" in finished
    final = json.loads(ok(await cli("status", run, "--address", addr, "--json")).stdout)
    assert final["status"] == "completed"


async def test_the_console_script_honours_temporal_address(
    dev_env: WorkflowEnvironment, dev_worker, task_queue
):
    """The installed `agentctl` as a process: JSON on stdout, notes on stderr, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env["TEMPORAL_ADDRESS"] = address(dev_env)
    args = ("run", "onboarding", "--input", json.dumps(hire()), "--as", "ops-anna",
            "--task-queue", task_queue, "--json")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        str(AGENTCTL), *args, env=signed_in_env(args, env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    run = json.loads(out)["run"]
    assert f"started run {run}" in err.decode()
    # Take the run to its end, so no workflow is left in the worker's cache at shutdown.
    addr = address(dev_env)
    await until_status(run, addr, "waiting_event")
    ok(await cli("signal", run, "clearance_granted", "--address", addr))
    await until_status(run, addr, "waiting_approval")
    ok(await cli("approve", run, "--as", "hugo", "--address", addr))
    assert "outcome: completed" in ok(await cli("result", run, "--wait", "--address", addr)).stdout


async def test_run_and_status_without_a_worker(dev_env: WorkflowEnvironment, task_queue):
    addr = address(dev_env)
    started = ok(
        await cli("run", "onboarding", "--input", json.dumps(hire()), "--as", "alice",
                  "--task-queue", task_queue, "--address", addr, "--json")
    )  # fmt: skip
    run = json.loads(started.stdout)["run"]  # still valid JSON: the warning went to stderr
    assert f"warning: no worker polls task queue {task_queue!r}" in started.stderr

    t0 = time.monotonic()
    line = error(await cli("status", run, "--address", addr, "--json"))
    assert time.monotonic() - t0 < 8
    assert f"no worker polls its task queue {task_queue!r}" in line
    assert f"agentctl worker --task-queue {task_queue}" in line


async def test_runs_that_are_not_there_or_taken(dev_env: WorkflowEnvironment, task_queue):
    addr = address(dev_env)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    for args in (
        ("signal", ghost, "clearance_granted"),
        ("status", ghost),
        ("result", ghost, "--wait"),
        ("transcript", ghost, "--json"),
    ):
        line = error(await cli(*args, "--address", addr))
        assert f"no run {ghost!r}" in line and "agentctl list" in line, args

    run = f"taken-{uuid.uuid4().hex[:6]}"
    start = ("run", "onboarding", "--input", json.dumps(hire()), "--id", run, "--as", "alice")
    ok(await cli(*start, "--task-queue", task_queue, "--address", addr))
    line = error(await cli(*start, "--task-queue", task_queue, "--address", addr))
    assert f"a run with id {run!r} already exists" in line


# --- bad input: one line on stderr, exit 1, nothing started -------------------------------------


def test_unknown_agent_lists_the_known_ones():
    line = error(invoke("run", "payroll", "--as", "alice", "--address", dead_address()))
    assert "unknown agent 'payroll'" in line
    catalog = discover()
    assert f"known agents: {', '.join(sorted(set(catalog.agents) - catalog.hidden))}" in line


def test_input_that_fails_the_schema_names_the_fields():
    data = hire(personal_email="not-an-email")
    del data["ship_to"]
    line = error(
        invoke(
            "run",
            "onboarding",
            "--input",
            json.dumps(data),
            "--as",
            "alice",
            "--address",
            dead_address(),
        )  # fmt: skip
    )
    assert "input does not fit agent 'onboarding'" in line
    assert "ship_to: Field required" in line and "personal_email" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("run", "onboarding", "--as", "alice", "--input", "{employee_id: 1}"),
            "--input is not valid JSON",
        ),
        (
            ("run", "onboarding", "--as", "alice", "--input", "[1, 2]"),
            "--input must be a JSON object",
        ),
        (("signal", "some-run", "go", "--data", "{'a': 1}"), "--data is not valid JSON"),
        (("signal", "some-run", "go", "--data", '"text"'), "--data must be a JSON object"),
    ],
)
def test_malformed_json_is_refused_before_connecting(args: tuple[str, ...], expected: str):
    line = error(invoke(*args, "--address", dead_address()))
    assert expected in line


def test_invalid_model_route_is_refused():
    line = error(
        invoke("run", "onboarding", "--input", json.dumps(hire()), "--as", "alice",
               "--model", "nope")
    )  # fmt: skip
    assert "model route 'nope' is not 'provider:model'" in line
    assert "nope" in line


def test_unreachable_server_names_the_address_and_how_to_start_one():
    dead = dead_address()
    t0 = time.monotonic()
    line = error(
        invoke("run", "onboarding", "--input", json.dumps(hire()), "--as", "alice",
               "--address", dead)
    )  # fmt: skip
    assert time.monotonic() - t0 < 5
    assert f"cannot reach the Temporal server at {dead}" in line
    assert "agentctl server" in line and "make demo" in line and "TEMPORAL_ADDRESS" in line

    other = dead_address()
    line = error(invoke("list", "--json", env={"TEMPORAL_ADDRESS": other}))
    assert f"cannot reach the Temporal server at {other}" in line


def test_a_server_that_never_answers_fails_fast(silent_server: str, monkeypatch):
    assert Settings().connect_timeout <= 5  # the default: seconds, not the SDK's 30 s
    monkeypatch.setenv("DURABLE_AGENTS_CONNECT_TIMEOUT", "1")
    t0 = time.monotonic()
    line = error(invoke("status", "some-run", "--address", silent_server))
    assert time.monotonic() - t0 < 4
    assert f"cannot reach the Temporal server at {silent_server} (no answer within 1 s)" in line


def test_an_unknown_profile_is_a_configuration_error():
    line = error(invoke("list", env={"TEMPORAL_PROFILE": f"nope-{uuid.uuid4().hex[:4]}"}))
    assert "Temporal client configuration is invalid" in line


@pytest.mark.parametrize(
    "args",
    [
        ("--status", "completed' OR AgentName != 'x"),
        ("--status", "Running"),
        ("--agent", "onboarding' OR WorkflowType != '"),
        ("--agent", 'a" OR "1"="1'),
        ("--agent", "a\\' OR 1=1"),
    ],
)
def test_list_filters_cannot_inject_into_the_visibility_query(args: tuple[str, str]):
    line = error(invoke("list", *args, "--address", dead_address()))
    assert args[1] in line or repr(args[1]) in line


def test_list_query_for_valid_filters():
    latest = "ExecutionStatus != 'ContinuedAsNew'"
    assert ops.list_query() == f"WorkflowType = 'AgentWorkflow' AND {latest}"
    assert ops.list_query("onboarding", "waiting_event") == (
        f"WorkflowType = 'AgentWorkflow' AND {latest} AND AgentName = 'onboarding' "
        "AND AgentStatus = 'waiting_event'"
    )
