"""A workflow that stands for a run of 0.2.0 continuing as new: it hands its input (a carried
state in the old format) on to the agent workflow. Only a continue-as-new may carry state into
a run; a client starting one with it is refused (workflows/starts.py). Kept in a module of its
own: the workflow sandbox loads it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._vocab.schemas import AgentRun


@workflow.defn(name="HandsOver")
class HandsOver:
    @workflow.run
    async def run(self, old: AgentRun) -> None:
        workflow.continue_as_new(old, workflow="AgentWorkflow")
