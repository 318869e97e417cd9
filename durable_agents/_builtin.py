"""Tools that run inside the workflow itself: waits and timers that survive restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from durable_agents._spec import ToolContract


class WaitForEventInput(BaseModel):
    events: list[str] = Field(min_length=1, description="Names of the events to wait for.")
    timeout_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 366,
        description="Give up after this many hours (capped by the spec).",
    )


class WaitForEventOutput(BaseModel):
    status: Literal["received", "timeout"]
    event: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    waited_hours: float


class SleepUntilInput(BaseModel):
    until: AwareDatetime = Field(description="ISO 8601 time, with a timezone, to sleep until.")


class SleepUntilOutput(BaseModel):
    woke_at: datetime


class AskHumanInput(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    timeout_hours: float = Field(default=72.0, gt=0, le=24 * 366)


class AskHumanOutput(BaseModel):
    status: Literal["answered", "timeout"]
    answer: str | None = None
    answered_by: str | None = None


ASK_HUMAN = ToolContract(
    name="ask_human",
    description=(
        "Ask the person you work for a question and wait (durably, for days if need be) for "
        "the answer. Use it when information is missing; never guess."
    ),
    input_model=AskHumanInput,
    output_model=AskHumanOutput,
    side_effect="read_only",
    durable=True,
)


class SpawnAgentInput(BaseModel):
    agent: str = Field(min_length=1, description="Which agent to start (e.g. fact_finder).")
    task: str = Field(min_length=1, max_length=4000, description="What it should do.")
    input: dict[str, Any] = Field(default_factory=dict, description="Its structured input.")
    budget_share: float = Field(
        default=0.25, gt=0, le=1, description="Share of your remaining budget it may spend."
    )
    scopes: list[str] | None = Field(
        default=None,
        description="Scopes it may use, among yours (default: all of yours). Never more.",
    )


class SpawnAgentOutput(BaseModel):
    child: str
    status: Literal["completed", "failed", "refused"]
    outcome: str | None = None
    answer: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


SPAWN_AGENT = ToolContract(
    name="spawn_agent",
    description=(
        "Start another agent as a sub-agent on a part of the task and wait for its answer. "
        "Several calls in one reply run at the same time."
    ),
    input_model=SpawnAgentInput,
    output_model=SpawnAgentOutput,
    side_effect="read_only",
    durable=True,
)

WAIT_FOR_EVENT = ToolContract(
    name="wait_for_event",
    description=(
        "Wait, durably and for days if need be, until one of the named outside events "
        "arrives (e.g. clearance_granted). Returns the event and its payload, or a timeout."
    ),
    input_model=WaitForEventInput,
    output_model=WaitForEventOutput,
    side_effect="read_only",
    durable=True,
)

SLEEP_UNTIL = ToolContract(
    name="sleep_until",
    description="Sleep durably until the given time (ISO 8601 with timezone), then go on.",
    input_model=SleepUntilInput,
    output_model=SleepUntilOutput,
    side_effect="read_only",
    durable=True,
)
