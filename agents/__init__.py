"""The agent registry: every agent a worker can run, by name."""

from __future__ import annotations

from agents.bench import BENCH
from agents.onboarding import ONBOARDING
from agents.reader import READER, SKIMMER
from agents.refund import REFUND
from agents.research import FACT_FINDER, RESEARCH
from agents.spec import AgentSpec

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
