"""Where the workflow finds its agents and tools: the catalog of the worker running it.

The worker's plugin (workers/plugin.py) hands its catalog to every workflow it runs through
an extern function, so there is no module-level registry and two workers in one process may
serve different agents. A worker that does not know a run's agent raises `AgentNotHere`, which
fails the workflow task, never the run: Temporal retries the task, and a worker that knows the
agent takes it (a fleet being rolled out loses no run).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._catalog import Catalog
    from durable_agents._spec import AgentSpec, ToolContract
    from durable_agents.errors import UnknownAgent

EXTERN = "durable_agents.catalog"


class AgentNotHere(RuntimeError):
    """This worker does not serve the agent (or tool) a run needs; another one may."""


def current() -> Catalog:
    provide = workflow.extern_functions().get(EXTERN)
    if provide is None:
        raise AgentNotHere(
            "this worker runs AgentWorkflow without DurableAgentsPlugin: it knows no agents"
        )
    catalog: Catalog = provide()
    return catalog


def spec(name: str) -> AgentSpec:
    """The agent's spec; AgentNotHere (a retried task, never a failed run) if unknown here."""
    try:
        return current().agent(name)
    except UnknownAgent as exc:
        raise AgentNotHere(
            f"no worker here knows agent {name!r} ({exc}); the run waits for one that does"
        ) from None


def tool(name: str) -> ToolContract:
    found = current().tool(name)
    if found is None:
        raise AgentNotHere(f"no worker here knows tool {name!r}; the run waits for one that does")
    return found
