"""Recorded histories must replay against today's workflow code (runs in flight survive deploys)."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.workflow import NondeterminismError

from durable_agents._discovery import discover
from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.workers.plugin import interceptors, sandbox
from durable_agents.workflows.agent import AgentWorkflow

# Every release's corpus (tests/histories/<version>/), replayed against today's code.
HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))


def load(path: Path) -> WorkflowHistory:
    # The workflow id it was recorded under (child ids derive from it): the name without the
    # suffixes that tell versions and runs of a chain apart.
    workflow_id = re.sub(r"(_before_\w+|_run\d+|_waiting)$", "", path.stem)
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def replayer(*workflows: type, runner: WorkflowRunner | None = None) -> Replayer:
    return Replayer(
        workflows=list(workflows),
        data_converter=pydantic_data_converter,
        workflow_runner=runner or sandbox(),
        interceptors=interceptors(discover()),
    )


def test_histories_are_committed() -> None:
    """The corpus of the release (0.2.0 retired the pre-release patches and re-recorded it):
    the agent loop on both providers, a run mid-approval that timed out, a saga approved and
    rejected, a fan-out of sub-agents, a chain of continue-as-new, refused messages."""
    names = {p.stem for p in HISTORIES if p.parent.name == "0.2.0"}
    assert {
        "onboarding_openai_approved",
        "onboarding_anthropic_approved",
        "onboarding_gated_timed_out",
        "refund_escalated_approved",
        "refund_escalated_rejected",
        "research_fan_out",
        # one run that continued as new: in a turn, and while an approval waited
        "reader_continued_run1",
        "reader_continued_run2",
        "reader_continued_run3",
        # refused signals of every kind (not JSON, unknown fields, two payloads, a typo)
        "onboarding_messages_refused",
        # a run in flight, waiting for an approval
        "refund_waiting_approval",
    } <= names


def markers(path: Path) -> list[str]:
    """The patches and local activities a history recorded, in order."""
    found = []
    for event in json.loads(path.read_text())["events"]:
        attrs = event.get("markerRecordedEventAttributes")
        for payload in (attrs or {}).get("details", {}).get("patch-data", {}).get("payloads", []):
            found.append("patch " + json.loads(base64.b64decode(payload["data"]))["id"])
        for payload in (attrs or {}).get("details", {}).get("data", {}).get("payloads", []):
            found.append("local " + json.loads(base64.b64decode(payload["data"]))["activity_type"])
    return found


def test_the_proofs_corpus_is_committed() -> None:
    """0.3.0's corpus (recorded with people's proofs): the same runs as 0.2.0's, where each
    decision, operator action and a person's start carries a proof its worker verified."""
    folder = Path(__file__).parent / "histories" / "0.3.0"
    renamed = {"refund_waiting_approval": "refund_escalated_approved_waiting"}
    assert {renamed.get(p.stem, p.stem) for p in HISTORIES if p.parent.name == "0.2.0"} <= {
        p.stem for p in folder.glob("*.json")
    }
    approved = markers(folder / "onboarding_openai_approved.json")
    assert "patch start-proofs-v1" in approved and "patch person-proofs-v1/1" in approved
    assert approved.count("local verify_proof") == 1  # hana's decision (tester is a service)
    refund = markers(folder / "refund_escalated_approved.json")
    assert refund.count("local verify_proof") == 2  # agent-desk's start, then maria's decision


def test_an_edited_approval_is_in_the_corpus() -> None:
    """A run whose email HR edited before approving: the tool ran with the edits behind the
    patch that brought them, after the edit's proof was verified."""
    found = markers(
        Path(__file__).parent / "histories" / "0.3.0" / "onboarding_edited_approved.json"
    )
    assert found.index("patch edit-then-approve-v1") > found.index("local verify_proof")


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_against_current_code(path: Path) -> None:
    result = await replayer(AgentWorkflow).replay_workflow(load(path))
    assert result.replay_failure is None


@workflow.defn(name="AgentWorkflow")
class ReorderedAgentWorkflow(AgentWorkflow):
    """A careless change: a timer before the first model turn, without `workflow.patched`."""

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(run)


async def test_an_incompatible_change_is_caught() -> None:
    history = load(HISTORIES[0])
    with pytest.raises(NondeterminismError):
        # Unsandboxed: this test module itself is not sandbox-safe; determinism checks still run.
        await replayer(ReorderedAgentWorkflow, runner=UnsandboxedWorkflowRunner()).replay_workflow(
            history
        )


@workflow.defn(name="AgentWorkflow")
class PatchedAgentWorkflow(AgentWorkflow):
    """The same change made the right way: behind `workflow.patched`."""

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        if workflow.patched("timer-before-first-turn"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(run)


@pytest.mark.parametrize("path", HISTORIES[:2], ids=lambda p: p.stem)
async def test_the_same_change_behind_a_patch_replays(path: Path) -> None:
    runner = UnsandboxedWorkflowRunner()
    result = await replayer(PatchedAgentWorkflow, runner=runner).replay_workflow(load(path))
    assert result.replay_failure is None
