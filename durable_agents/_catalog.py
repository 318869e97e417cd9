"""The agent registry: every agent a worker can run, by name."""

from __future__ import annotations

from durable_agents._spec import AgentSpec
from sim.agents.bench import BENCH
from sim.agents.onboarding import ONBOARDING
from sim.agents.reader import READER, SKIMMER
from sim.agents.refund import REFUND
from sim.agents.research import FACT_FINDER, RESEARCH

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec for spec in (ONBOARDING, REFUND, RESEARCH, FACT_FINDER, BENCH, READER, SKIMMER)
}


class UnknownAgent(LookupError):
    """No agent of that name is registered."""


def get_agent(name: str) -> AgentSpec:
    try:
        return AGENTS[name]
    except KeyError:
        known = ", ".join(sorted(AGENTS))
        raise UnknownAgent(f"unknown agent {name!r}; known agents: {known}") from None
