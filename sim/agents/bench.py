"""A probe agent for benchmarks and load tests: K turns of one read-only `echo` call each."""

from __future__ import annotations

from pydantic import BaseModel, Field

from durable_agents import AgentSpec
from sim.agents.toolbox import echo


class BenchInput(BaseModel):
    turns: int = Field(default=3, ge=1, le=10_000)


BENCH = AgentSpec(
    name="bench",
    version="1.0.0",
    description="Calls `echo` once a turn for the given number of turns, then stops.",
    system_prompt="Call the echo tool once per turn, as many turns as the input says.",
    model_route=("sim-openai:bench",),
    tools=(echo,),
    input_model=BenchInput,
    max_turns=10_001,
)
