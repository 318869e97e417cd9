"""A research agent that fans out to sub-agents, one per topic, and merges their findings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from durable_agents import SPAWN_AGENT, WAIT_FOR_EVENT, AgentSpec


class ResearchQuestion(BaseModel):
    question: str = Field(min_length=1)
    topics: list[str] = Field(min_length=1, max_length=6)
    recurse: bool = False  # hand the whole question to another research agent (depth probe)


class FactQuery(BaseModel):
    topic: str = Field(min_length=1)


RESEARCH = AgentSpec(
    name="research",
    version="1.0.0",
    description="Split a question into topics, research each with a sub-agent, merge.",
    system_prompt=(
        "Split the question into its topics and start one fact_finder sub-agent per topic in a "
        "single reply, so they work at the same time. Then merge their findings into one answer "
        "and say which topics could not be researched."
    ),
    model_route=("sim-openai:research",),
    tools=(SPAWN_AGENT,),
    input_model=ResearchQuestion,
    max_turns=6,
    max_depth=2,
    max_children=3,
)

FACT_FINDER = AgentSpec(
    name="fact_finder",
    version="1.0.0",
    description="Find what is known about one topic and report it in a few sentences.",
    system_prompt="Report what is known about the topic in a few sentences.",
    model_route=("sim-openai:fact_finder",),
    tools=(WAIT_FOR_EVENT,),
    input_model=FactQuery,
    max_turns=3,
)
