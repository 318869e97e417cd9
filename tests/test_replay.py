"""Recorded histories must replay against today's workflow code (runs in flight survive deploys)."""

from __future__ import annotations

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
from workers.plugin import interceptors, sandbox
from workflows.agent import STRICT_MESSAGES, AgentWorkflow
from workflows.models import AgentResult, AgentRun

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    # The workflow id it was recorded under (child ids derive from it): the name without the
    # suffixes that tell versions and runs of a chain apart.
    workflow_id = re.sub(r"(_before_\w+|_run\d+)$", "", path.stem)
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def replayer(*workflows: type, runner: WorkflowRunner | None = None) -> Replayer:
    return Replayer(
        workflows=list(workflows),
        data_converter=pydantic_data_converter,
        workflow_runner=runner or sandbox(),
        interceptors=interceptors(discover()),
    )


def test_histories_are_committed() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "onboarding_openai_approved",
        "onboarding_anthropic_approved",
        "onboarding_gated_timed_out",
        "onboarding_openai_completed",
        "onboarding_anthropic_completed",
        "onboarding_timed_out",
        "refund_escalated_approved",
        "refund_escalated_rejected",
        "research_fan_out",
        "research_fan_out_before_store",
        "onboarding_openai_approved_before_store",
        "refund_escalated_approved_before_store",
        # one run that continued as new twice: in a turn, and while an approval waited
        "reader_continued_run1",
        "reader_continued_run2",
        "reader_continued_run3",
        # refused signals of every kind (not JSON, unknown fields, two payloads, a typo)
        "onboarding_messages_refused",
        "onboarding_openai_approved_before_strict",
        "refund_escalated_rejected_before_strict",
        # recorded by the code before strict messages: a mistyped signal read as an approval
        "onboarding_mistyped_approve_before_strict",
    } <= names


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


async def test_approval_gates_without_the_patch_would_break_older_runs(monkeypatch) -> None:
    """Old runs replay only because the gate is behind `workflow.patched`: force it on."""
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    old = load(next(p for p in HISTORIES if p.stem == "onboarding_openai_completed"))
    with pytest.raises(NondeterminismError):
        await replayer(AgentWorkflow, runner=UnsandboxedWorkflowRunner()).replay_workflow(old)


async def test_strict_messages_without_the_patch_would_break_older_runs(monkeypatch) -> None:
    """Recorded by the code from before strict messages: an ops tool's mistyped signal
    (`"approved": false`) was read as an approval and the email went out. The run replays
    only because strict reading is behind `workflow.patched`: force that patch on."""
    real = workflow.patched
    monkeypatch.setattr(
        workflow, "patched", lambda patch_id: patch_id == STRICT_MESSAGES or real(patch_id)
    )
    old = load(next(p for p in HISTORIES if p.stem == "onboarding_mistyped_approve_before_strict"))
    with pytest.raises(NondeterminismError):
        await replayer(AgentWorkflow, runner=UnsandboxedWorkflowRunner()).replay_workflow(old)
