"""How a run leaves its loop: the two ways out, raised wherever the loop decides it.

`EndRun` finishes the run with an outcome and an answer (a limit reached, a wait given up, an
operator's abort); `ContinueRun` hands the run to a new one at a safe point (its history grew,
or an upgrade is due). Both are caught in one place, `AgentWorkflow.run`, which alone unwinds a
saga and writes the result (workflows/agent.py: `_end`).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._vocab.schemas import Outcome
    from durable_agents.workflows.state import RunState


class ContinueRun(Exception):  # noqa: N818  (a control-flow signal, like EndRun)
    """Raised at a safe point to continue the run as new; the state carries everything over."""


class EndRun(Exception):
    """Raised inside the loop to finish the run with an outcome."""

    def __init__(self, outcome: Outcome, answer: str) -> None:
        super().__init__(answer)
        self.outcome: Outcome = outcome
        self.answer = answer


def aborted(state: RunState) -> EndRun:
    return EndRun(
        "aborted", f"aborted by an operator: {state.parking.abort_reason or 'no reason given'}"
    )
