"""Deploying new code while runs are in flight (dev server, Worker Deployment Versioning): runs
on version 1 take their next turn on version 2 once it is promoted, with their approvals, waits
and usage intact; a pinned run finishes on version 1; version 1 drains and its worker stops; and
a rollback moves runs back the same way. Workers are separate processes (tests/deploy_agents.py);
operators use `agentctl deploy`."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import AgentResult, AgentStatus
from sim.world import world
from tests.people import signed_in_env

ROOT = Path(__file__).parent.parent
AGENTCTL = str(Path(sys.executable).parent / "agentctl")


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def chain(client: Client, workflow_id: str) -> list[list[Any]]:
    """Every run of the workflow id, oldest first, as its history events."""
    runs: list[list[Any]] = []
    run_id = ""
    desc = await client.get_workflow_handle(workflow_id).describe()
    first = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
    run_id = first
    while run_id:
        resp = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                maximum_page_size=1000,
            )
        )
        events = list(resp.history.events)
        runs.append(events)
        last = events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


def builds(events: list[Any]) -> list[str]:
    """The build id of each completed workflow task of one run."""
    return [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in events
        if e.HasField("workflow_task_completed_event_attributes")
    ]


def task_failures(runs: list[list[Any]]) -> list[str]:
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for events in runs
        for e in events
        if e.HasField("workflow_task_failed_event_attributes")
    ]


class Rollout:
    """A deployment of tests/deploy_agents.py's versions on the test's dev server: worker
    processes per version (stopped by pid at the end), each version's check, and `agentctl`
    as an operator runs it."""

    def __init__(self, client: Client, sim_url: str, tmp_path: Path) -> None:
        self.client = client
        self.queue = f"deploy-{uuid.uuid4().hex[:6]}"
        self.deployment = f"agents-{uuid.uuid4().hex[:6]}"
        self.env = os.environ | {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "DURABLE_AGENTS_DEPLOYMENT": self.deployment,
            "DURABLE_AGENTS_STATE_DIR": str(tmp_path / "state"),
            "DURABLE_AGENTS_TASK_QUEUE": self.queue,
            "DURABLE_AGENTS_PLUGINS": "tests.deploy_agents",
            # The sim's identity provider: the approver signs in there, workers check proofs.
            **world(sim_url),
            "PYTHONPATH": str(ROOT),
            "DEPLOY_DIR": str(tmp_path),
        }
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def version_env(self, version: str) -> dict[str, str]:
        return self.env | {"DEPLOY_VERSION": version, "DURABLE_AGENTS_BUILD_ID": f"v{version}"}

    def start_worker(self, version: str) -> None:
        self.workers[version] = subprocess.Popen(
            [sys.executable, "-m", "tests.deploy_agents", self.queue], cwd=ROOT,
            env=self.version_env(version), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def check(self, version: str) -> subprocess.CompletedProcess[str]:
        """The version's `agentctl worker --check`, run with its code."""
        return subprocess.run(
            [sys.executable, "-m", "tests.deploy_agents", self.queue, "--check"], cwd=ROOT,
            env=self.version_env(version), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def agentctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENTCTL, *args], env=signed_in_env(args, self.env), capture_output=True,
            text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def rollout(dev_env: WorkflowEnvironment, sim: Any, tmp_path: Path) -> Iterator[Rollout]:
    deploy = Rollout(dev_env.client, sim.url, tmp_path)
    yield deploy
    deploy.stop()


@pytest.mark.timeout(300)
@pytest.mark.slow  # `make test-slow`
async def test_runs_move_to_the_new_version_at_turn_boundaries_and_back(
    dev_env: WorkflowEnvironment, rollout: Rollout, tmp_path: Path
) -> None:
    client = dev_env.client
    queue, deployment = rollout.queue, rollout.deployment
    hold = tmp_path / "hold"
    workers, start_worker, agentctl = rollout.workers, rollout.start_worker, rollout.agentctl

    def check(version: str) -> None:
        out = rollout.check(version)
        assert out.returncode == 0, out.stdout + out.stderr

    async def promote(build: str) -> str:
        """`agentctl deploy promote`, once the version's worker has polled."""
        out = agentctl("deploy", "promote", build)
        deadline = time.monotonic() + 30
        while out.returncode != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            out = agentctl("deploy", "promote", build)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def start(agent: str, job: str, mode: str) -> WorkflowHandle[Any, AgentResult]:
        out = agentctl(
            "run", agent, "--as", "tester", "--task-queue", queue,
            "--input", f'{{"job": "{job}", "mode": "{mode}"}}',
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        run_id = out.stdout.split("started run ")[1].split()[0]
        return client.get_workflow_handle(run_id, result_type=AgentResult)

    async def status(handle: WorkflowHandle[Any, Any]) -> AgentStatus:
        return await handle.query("status", result_type=AgentStatus)

    def effects() -> list[tuple[Any, ...]]:
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as conn:
            return conn.execute("select key, job, n, version from effects").fetchall()

    hold.touch()
    start_worker("1")  # the deployment's first worker: it makes its version current

    async def bootstrapped() -> bool:
        shown = agentctl("deploy", "status")
        return f"deployment {deployment}: current v1" in shown.stdout

    await until(bootstrapped, what="the first worker to make v1 current")

    # Five runs on version 1, paused mid-work.
    approval = start("stepper", "a", "approval")
    event = start("stepper", "e", "event")
    steps = [start("stepper", f"s{i}", "steps") for i in (1, 2)]
    pinned = start("stepper_pinned", "p", "steps")
    runs = [approval, event, *steps, pinned]

    async def paused() -> bool:
        found = [await status(h) for h in runs]
        held = {e[1] for e in effects()} if (tmp_path / "ledger.sqlite3").exists() else set()
        return (
            [s.status for s in found[:2]] == ["waiting_approval", "waiting_event"]
            and all(s.status == "running" and s.turn == 1 for s in found[2:])
            and not held & {"s1", "s2", "p"}
        )

    await until(paused, what="five runs paused on version 1")
    before = {h.id: (await status(h)).usage.input_tokens for h in runs}
    assert all(before.values())

    # Version 2 starts beside version 1, is ramped, then promoted.
    start_worker("2")
    await promote("v1")  # v2 has polled once `deploy ramp` below finds it
    check("2")
    out = agentctl("deploy", "ramp", "v2", "0")
    deadline = time.monotonic() + 30
    while out.returncode != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        out = agentctl("deploy", "ramp", "v2", "0")
    assert out.returncode == 0 and "v2 ramping at 0%" in out.stdout, out.stdout + out.stderr
    shown = await promote("v2")
    assert f"deployment {deployment}: current v2" in shown, shown
    # The two waiting runs were asked to move at once; the three mid-turn ones keep v1 open.
    assert "asked 2 waiting runs on other versions to move now" in shown, shown
    assert "open runs: 3" in shown and "left: 3 mid-turn" in shown, shown
    listed = agentctl("list")
    assert "VERSION" in listed.stdout and listed.stdout.count(" v1 ") >= 3, listed.stdout
    shown = agentctl("status", steps[0].id).stdout
    assert "version: v1 (ran on v1)" in shown, shown

    async def moved() -> bool:
        for waiting, state in ((event, "waiting_event"), (approval, "waiting_approval")):
            now = await status(waiting)
            if now.status != state or now.builds != ["v1", "v2"]:
                return False
        return True

    await until(moved, timeout=30, what="the waiting runs to move onto version 2")

    hold.unlink()  # the held steps finish (on version 1); the next turns run on version 2
    out = agentctl("signal", event.id, "go", "--data", "{}")
    assert out.returncode == 0, out.stdout + out.stderr
    out = agentctl("approve", approval.id, "--as", "olga")
    assert out.returncode == 0, out.stdout + out.stderr
    results = {h.id: await asyncio.wait_for(h.result(), 90) for h in runs}

    for handle in runs[:4]:  # upgraded at a turn boundary
        result = results[handle.id]
        assert result.outcome == "completed", result.answer
        history = await chain(client, handle.id)
        assert len(history) >= 2, handle.id
        assert set(builds(history[0])) == {"v1"}, builds(history[0])
        assert all(set(builds(run)) == {"v2"} for run in history[1:]), handle.id
        assert history[0][-1].HasField("workflow_execution_continued_as_new_event_attributes")
        final = await status(handle)
        assert final.builds == ["v1", "v2"] and final.build_id == "v2", final
        assert final.agent_version == "2"  # version 2's spec acts (and audits) now
        assert final.usage.input_tokens > before[handle.id]  # carried over, then grew
        transcript = await handle.query("transcript", result_type=list[Any])
        texts = [e["text"] for e in transcript]
        assert any("upgrading: continued as new" in t for t in texts), texts
        memo = await (await client.get_workflow_handle(handle.id).describe()).memo()
        assert memo.get("changed_by") == "version 2", memo
    # Their steps after the upgrade ran version 2's tool.
    assert results[steps[0].id].answer == "s1 done: steps on v1,v2-new"
    assert results[event.id].answer == "e done: steps on v2-new,v2-new"
    assert results[approval.id].answer == "a done: steps on v2-new,v2-new"
    [decided] = (await status(approval)).approvals  # the approval came across intact
    assert (decided.state, decided.decided_by) == ("approved", "olga")
    # The pinned run finished where it started.
    assert results[pinned.id].answer == "p done: steps on v1,v1"
    pinned_history = await chain(client, pinned.id)
    assert len(pinned_history) == 1 and set(builds(pinned_history[0])) == {"v1"}
    assert (await status(pinned)).agent_version == "1"
    for handle in runs:
        assert not task_failures(await chain(client, handle.id)), handle.id
    # Each effect once: 2 steps per run, and the publish.
    done = effects()
    assert len(done) == len({e[0] for e in done}) == 2 * 5 + 1, done

    # Version 1 drains; its worker stops.
    async def drained() -> bool:
        out = agentctl("deploy", "status", "--json")
        import json

        row = json.loads(out.stdout)
        [v1] = [v for v in row["versions"] if v["build_id"] == "v1"]
        return v1["open_runs"] == 0 and v1["drainage"] == "drained"

    await until(drained, timeout=60, what="version 1 drained")
    workers["1"].send_signal(signal.SIGTERM)
    assert workers["1"].wait(30) == 0

    # Roll back: version 1 again beside version 2, promoted; a run on 2 moves back.
    hold.touch()
    back = start("stepper", "r", "steps")

    async def held() -> bool:
        return (await status(back)).status == "running" and (await status(back)).turn == 1

    await until(held, what="a run on version 2")
    start_worker("1")
    check("1")
    await promote("v1")
    await asyncio.sleep(1)
    hold.unlink()
    result = await asyncio.wait_for(back.result(), 90)
    assert result.answer == "r done: steps on v2-new,v1"
    history = await chain(client, back.id)
    assert set(builds(history[0])) == {"v2"} and set(builds(history[-1])) == {"v1"}
    assert not task_failures(history)


@pytest.mark.timeout(240)
async def test_a_bad_build_is_refused_and_a_promote_moves_the_waiting_runs_now(
    dev_env: WorkflowEnvironment, rollout: Rollout, people: Any, tmp_path: Path
) -> None:
    """Version 3 (a workflow change without a patch) fails its check, and `ramp` and `promote`
    refuse it; `--force` overrides, on the record. Version 2 passes its check, and its promote
    moves twenty runs waiting on version 1 (ten for an event, ten for an approval, for days)
    onto it within a minute, deadlines and approvals as they were; a rollback moves them back,
    and each completes with its effects once."""
    import json

    from durable_agents._vocab.schemas import AgentRun

    client = dev_env.client
    start_worker, check, agentctl = rollout.start_worker, rollout.check, rollout.agentctl

    def deploy_status() -> dict[str, Any]:
        out = agentctl("deploy", "status", "--json")
        assert out.returncode == 0 or "no Worker Deployment" in out.stderr, out.stderr
        return dict(json.loads(out.stdout)) if out.returncode == 0 else {"versions": []}

    async def on(handles: list[Any], build: str) -> bool:
        for h in handles:
            now = await h.query("status", result_type=AgentStatus)
            if now.build_id != build or not now.status.startswith("waiting"):
                return False
        return True

    start_worker("1")

    async def bootstrapped() -> bool:
        return deploy_status().get("current") == "v1"

    await until(bootstrapped, what="the first worker to make v1 current")
    handles = []
    for i in range(20):
        mode = "event" if i % 2 else "approval"
        run = AgentRun(agent="stepper", input={"job": f"w{i}", "mode": mode},
                       principal="tester")  # fmt: skip
        handles.append(await client.start_workflow(
            "AgentWorkflow", run, id=f"wait-{i}-{uuid.uuid4().hex[:6]}", task_queue=rollout.queue,
            result_type=AgentResult,
        ))  # fmt: skip
    await until(lambda: on(handles, "v1"), what="twenty runs waiting on v1")
    before = {h.id: await h.query("status", result_type=AgentStatus) for h in handles}
    assert all(s.waiting_until is not None for s in before.values())

    start_worker("2")
    start_worker("3")

    async def polled() -> bool:
        return {"v2", "v3"} <= {v["build_id"] for v in deploy_status()["versions"]}

    await until(polled, what="versions 2 and 3 to poll")

    # The bad build: unchecked, then failing its check, it gets no traffic.
    unchecked = agentctl("deploy", "ramp", "v3", "10")
    assert unchecked.returncode == 1 and "it has not been checked" in unchecked.stderr
    bad = check("3")
    assert bad.returncode == 1 and "FAILED" in bad.stdout, bad.stdout + bad.stderr
    assert "replay: NondeterminismError" in bad.stdout, bad.stdout
    for args in (("ramp", "v3", "10"), ("promote", "v3")):
        refused = agentctl("deploy", *args)
        assert refused.returncode == 1 and "its check failed" in refused.stderr, refused
    forced = agentctl("deploy", "ramp", "v3", "0", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "forced: ramp 0% by " in forced.stdout and "despite: its check failed" in forced.stdout
    [v3] = [v for v in deploy_status()["versions"] if v["build_id"] == "v3"]
    assert v3["check"] == "failed" and v3["forced"]["action"] == "ramp 0%"

    # The good build: checked, promoted; the waiting runs move now, still waiting.
    took = time.monotonic()
    good = check("2")
    print(f"the check of v2 (20 open, 20 closed runs) took {time.monotonic() - took:.1f} s")
    assert good.returncode == 0 and "passed: replayed 20 open" in good.stdout, good.stdout
    assert "read 20 open runs' state" in good.stdout, good.stdout
    promoted = agentctl("deploy", "promote", "v2")
    assert promoted.returncode == 0, promoted.stderr
    assert "asked 20 waiting runs on other versions to move now" in promoted.stdout
    started = time.monotonic()
    await until(lambda: on(handles, "v2"), timeout=60, what="the waiting runs on v2")
    moved_in = time.monotonic() - started
    for h in handles:
        now = await h.query("status", result_type=AgentStatus)
        was = before[h.id]
        assert now.builds == ["v1", "v2"] and now.status == was.status
        assert now.waiting_until == was.waiting_until  # the same deadline
        assert now.approvals == was.approvals  # the same request, expiry, escalation
    print(f"20 waiting runs moved from v1 to v2 in {moved_in:.1f} s")

    # A rollback after the move: v1 checked again (it reads what v2 wrote), promoted.
    rollback = check("1")
    assert rollback.returncode == 0, rollback.stdout
    back = agentctl("deploy", "promote", "v1")
    assert back.returncode == 0 and "asked 20 waiting runs" in back.stdout, back.stderr
    await until(lambda: on(handles, "v1"), timeout=60, what="the runs back on v1")

    for i, h in enumerate(handles):
        if i % 2:
            await h.signal("event", {"name": "go"})
        else:
            await people.decide(h, "olga", True)
    results = [await asyncio.wait_for(h.result(), 60) for h in handles]
    assert all(r.outcome == "completed" for r in results)
    for h in handles:
        history = await chain(client, h.id)
        assert not task_failures(history), h.id
        assert [set(builds(run)) for run in history[:3]] == [{"v1"}, {"v2"}, {"v1"}]
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as conn:
        keys = [k for (k,) in conn.execute("select key from effects")]
    assert len(keys) == len(set(keys)) == 20 * 2 + 10  # two steps each, ten publishes
