"""Record the replay histories in tests/histories/ (`make histories`; commit the result).

Each is a real run of the onboarding agent against the sim, on the time-skipping server so a
week of waiting takes a moment. Re-record only on purpose: the point of the files is that
today's workflow code must still replay what older code wrote.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from durable_agents import __version__
from durable_agents._vocab.schemas import AgentRun, EventSignal
from durable_agents.client import start_run
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from sim.runner import SimServer
from sim.world import world
from tests.helpers import (
    approve_pending,
    chain_histories,
    start_onboarding,
    start_time_skipping,
    wait_for_status,
)
from tests.people import People, decide
from tests.test_budgets import run_past_a_deadline
from tests.test_refund import seed, start_refund

# Each release's corpus in its own folder; the replay tests replay every release's.
HISTORIES = Path(__file__).parent / "histories" / __version__


async def record(env: WorkflowEnvironment, name: str, route: str, clearance: bool) -> None:
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        # Recorded under its file's name: proofs name the run, and replay uses that id.
        handle = await start_onboarding(env.client, queue, route, workflow_id=name)
        await wait_for_status(handle, "waiting_event")
        await env.sleep(timedelta(days=2))
        if clearance:
            await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
            await approve_pending(handle)
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def record_refund(env: WorkflowEnvironment, sim_url: str, name: str, approve: bool) -> None:
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        order = seed(sim_url, "250.00")
        handle = await start_refund(env.client, queue, order, workflow_id=name)
        await wait_for_status(handle, "waiting_approval")
        if approve:  # a run in flight, mid-approval: what a deploy finds
            waiting = await handle.fetch_history()
            (HISTORIES / f"{name}_waiting.json").write_text(waiting.to_json())
        await env.sleep(timedelta(hours=30))  # past the escalation
        await decide(handle, "maria", approve, "checked the photos")
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def record_research(env: WorkflowEnvironment) -> None:
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        run = AgentRun(
            agent="research",
            principal="tester",
            input={"question": "What is Temporal?", "topics": ["history", "design"]},
        )
        # Its children's ids derive from its own: replay needs the same id as the file name.
        handle = await start_run(env.client, run, "research_fan_out", task_queue=queue)
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / "research_fan_out.json").write_text(history.to_json())
    print(f"recorded research_fan_out: {len(history.events)} events")


async def record_continued(env: WorkflowEnvironment) -> None:
    """A reader that continues as new in the middle of turns and while an approval waits."""
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        run = AgentRun(
            agent="reader",
            input={"turns": 4, "per_turn": 2, "chars": 2000, "email_at": 4},
            continue_after_bytes=10_000,
        )
        handle = await start_run(env.client, run, "reader_continued", task_queue=queue)
        first = handle.result_run_id or ""
        await wait_for_status(handle, "waiting_approval")
        for i in range(6):  # history grows while the approval waits: it continues as new
            event = EventSignal(name=f"note-{i}", payload={"text": "x" * 2000})
            await handle.signal(AgentWorkflow.on_event, event)
        await approve_pending(handle, approver="olga")
        await handle.result()
        histories = await chain_histories(env.client, handle.id, first)
    for i, history in enumerate(histories, 1):
        (HISTORIES / f"reader_continued_run{i}.json").write_text(history.to_json())
    print(f"recorded reader_continued: {len(histories)} runs")


async def record_refused(env: WorkflowEnvironment) -> None:
    """An onboarding run that an ops tool sends every kind of broken message, then completes."""
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        handle = await start_onboarding(
            env.client, queue, principal="Tester ", workflow_id="onboarding_messages_refused"
        )
        await wait_for_status(handle, "waiting_event")
        raw = RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"raw bytes"))
        await handle.signal("event", raw)
        await handle.signal("approve", {"approver": "hana", "approved": False})
        await handle.signal("event", args=[{"name": "clearance_granted"}, {"name": "x"}])
        await handle.signal("evnet", {"name": "clearance_granted"})
        await handle.signal("resume", {"by": "olga"})  # a name, no proof
        await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
        await wait_for_status(handle, "waiting_approval")
        await decide(handle, "hana", True, approver="HANA")
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / "onboarding_messages_refused.json").write_text(history.to_json())
    print(f"recorded onboarding_messages_refused: {len(history.events)} events")


async def record_deadline(env: WorkflowEnvironment, name: str = "reader_deadline") -> None:
    """A reader whose chain continues as new while an approval waits, the approval coming past
    its one-hour deadline from the chain's first start (within an hour of its last run's)."""
    queue = f"record-{uuid.uuid4().hex[:6]}"
    async with build_worker(env.client, queue):
        handle = await run_past_a_deadline(env, queue, workflow_id="reader_deadline")
        first = handle.first_execution_run_id or ""
        result = await handle.result()
        histories = await chain_histories(env.client, handle.id, first)
    for i, history in enumerate(histories, 1):
        (HISTORIES / f"{name}_run{i}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(histories)} runs, {result.outcome}")


async def record_edited(env: WorkflowEnvironment) -> None:
    """An onboarding run whose welcome email HR edited before approving it."""
    queue = f"record-{uuid.uuid4().hex[:6]}"
    name = "onboarding_edited_approved"
    async with build_worker(env.client, queue):
        handle = await start_onboarding(env.client, queue, workflow_id=name)
        await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
        await wait_for_status(handle, "waiting_approval")
        [asked] = (await handle.query(AgentWorkflow.status)).approvals
        edits = {"subject": "Welcome aboard", "body": "Dear Ada,\n\nWelcome!\n"}
        await decide(handle, "hana", True, "warmer", arguments=asked.arguments | edits)
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def main(only: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp, SimServer(Path(tmp) / "sim.db") as sim:
        os.environ.update(world(sim.url, sim.credentials))
        # The people who decide sign in at the sim's provider; their proofs go into history.
        People.current = People(sim.url, sim.db_path.parent, Path(tmp))
        env = await start_time_skipping()
        try:
            HISTORIES.mkdir(exist_ok=True)
            if only is not None:  # one recording added to the release's corpus
                await globals()[f"record_{only}"](env)
                return
            # Every file here is recorded by the code of its release. When a change needs
            # `workflow.patched`, keep the old files (rename them *_before_<change>) so the
            # replay tests prove the patch; re-record only for a release that retires patches.
            await record(env, "onboarding_openai_approved", "sim-openai:onboarding", True)
            await record(env, "onboarding_anthropic_approved", "sim-anthropic:onboarding", True)
            await record(env, "onboarding_gated_timed_out", "sim-openai:onboarding", False)
            await record_refund(env, sim.url, "refund_escalated_approved", True)
            await record_refund(env, sim.url, "refund_escalated_rejected", False)
            await record_research(env)
            await record_continued(env)
            await record_refused(env)
            await record_deadline(env)
            await record_edited(env)
        finally:
            await env.shutdown()


if __name__ == "__main__":
    import sys

    # `python -m tests.record_histories edited` records only `record_edited`'s run.
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
