"""What an agent is: a declarative spec and the typed contracts of the tools it may call.

Specs are plain data resolved inside the workflow, so they must stay deterministic: no I/O,
no clock, no environment. The code that touches the world lives in `activities/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError
from temporalio.common import RetryPolicy

from durable_agents._budgets import Budget
from workflows.models import ToolSchema

if TYPE_CHECKING:
    from durable_agents._approvals import ApprovalPolicy

SideEffect = Literal["read_only", "reversible", "irreversible"]

# Failures a retry cannot fix: the activity says so and the workflow decides what to do.
TOOL_NON_RETRYABLE = [
    "ToolInputInvalid",
    "ToolRejected",
    "ToolContractViolation",
    "UnknownTool",
    "PermissionDenied",
]


def problems(exc: ValidationError) -> str:
    """A validation error in one line: `field: what is wrong; …`, for people and models."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


@dataclass(frozen=True)
class Compensation:
    """The call that undoes a reversible step: a tool and its arguments, built from the step's
    input, its output and the reason the saga is unwinding."""

    tool: ToolContract | str  # the undoing tool, or its name (a tool undoing itself)
    # None: this particular call needs no undoing.
    arguments: Callable[[Mapping[str, Any], Mapping[str, Any], str], dict[str, Any] | None]

    @property
    def tool_name(self) -> str:
        return self.tool if isinstance(self.tool, str) else self.tool.name


LOCAL_MAX = timedelta(seconds=30)


@dataclass(frozen=True)
class ToolContract:
    """A tool's promise: typed input and output, its side effect, limits and required scopes."""

    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    side_effect: SideEffect
    timeout: timedelta = timedelta(seconds=30)
    max_attempts: int = 5
    required_scopes: tuple[str, ...] = ()
    compensation: Compensation | None = None
    durable: bool = False  # runs in the workflow itself (waits, timers), not as an activity
    # A local activity runs in the worker that runs the workflow, recorded as one marker event
    # instead of a scheduled/started/completed triple and an extra workflow task: about 700 bytes
    # less history per call. Measured here it also costs latency under load (bench.throughput,
    # echo as a local activity: 1.20x and 1.38x the baseline's ms per step, against 1.18x and
    # 1.16x without), so it is a choice per tool, and only for short, read-only calls.
    local: bool = False
    # The code that carries the call out (`durable_agents.tool` sets it); None for durable
    # tools, which the workflow runs itself.
    implementation: Callable[..., Any] | None = field(default=None, compare=False)
    # Only workers that serve this task queue run the tool; None: the run's own queue.
    task_queue: str | None = None

    def schema(self) -> ToolSchema:
        return _schema(self)

    def runs_locally(self) -> bool:
        return self.local and self.side_effect == "read_only" and self.timeout <= LOCAL_MAX

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=self.max_attempts,
            # run_tool raises every TOOL_NON_RETRYABLE type non-retryable itself, so the policy
            # in each scheduled event need not list them.
        )


@lru_cache(maxsize=256)
def _schema(contract: ToolContract) -> ToolSchema:
    # JSON-schema generation is slow and the answer never changes: once per tool per process.
    return ToolSchema(
        name=contract.name,
        description=contract.description,
        parameters=contract.input_model.model_json_schema(),
    )


@dataclass(frozen=True)
class WaitPolicy:
    """How long an agent may wait for an outside event, and what a timeout means."""

    max_wait: timedelta
    # "tell_model": the timeout goes back to the model as the tool's result;
    # "end_run": the run ends with outcome `timed_out` without another model turn.
    on_timeout: Literal["tell_model", "end_run"] = "tell_model"


@dataclass(frozen=True)
class RunawayPolicy:
    """When an agent counts as running away, and what then happens."""

    max_repeats: int = 3  # the same tool call with the same arguments
    max_idle_turns: int = 5  # turns in a row without a new successful tool call
    on_detect: Literal["park", "ask"] = "park"
    groups: tuple[str, ...] = ("operators",)  # who is asked, with on_detect="ask"
    ask_for: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class AgentSpec:
    """Everything that makes an agent: prompt, model route, tools, limits."""

    name: str
    version: str
    description: str
    system_prompt: str
    model_route: tuple[str, ...]
    tools: tuple[ToolContract, ...]
    input_model: type[BaseModel]
    max_turns: int = 20
    max_tool_errors: int = 3  # unknown tools and bad arguments fed back before giving up
    max_repairs: int = 2  # malformed model replies answered with a repair message
    llm_timeout: timedelta = timedelta(seconds=120)
    # Attempts at one model (Temporal's retries) before falling back to the next in the route.
    llm_attempts: int = 6
    max_tokens: int = 1024
    waits: Mapping[str, WaitPolicy] = field(default_factory=dict)
    default_wait: WaitPolicy = WaitPolicy(max_wait=timedelta(days=30))
    approvals: ApprovalPolicy | None = None  # None: the default policy (irreversible → ask)
    # A saga runs the compensations of its completed reversible steps, newest first, when an
    # approval is refused or a step fails for good.
    saga: bool = False
    runaway: RunawayPolicy = RunawayPolicy()
    budget: Budget = Budget()
    compact_at: float = 0.8  # of the model's context window
    max_depth: int = 2  # how deep a tree of sub-agents may grow below a run people started
    max_children: int = 3  # sub-agents running at once
    # Tool results larger than this (bytes of JSON) stay out of history, in the message store;
    # the model reads them in full ("full") or only their first `preview_chars` ("preview").
    # What a run is granted when whoever starts it names no scopes: None, every scope its tools
    # and their compensations require (see `scopes`).
    default_scopes: tuple[str, ...] | None = None
    inline_result_bytes: int = 16_000
    large_results: Literal["full", "preview"] = "full"
    preview_chars: int = 2000
    # What a run is about in a few words, from its validated input: the run's title in the
    # Temporal UI and in listings (e.g. "refund 250.00 on order O-1"). None: the agent's name.
    describe_run: Callable[[Mapping[str, Any]], str] | None = None

    def run_summary(self, data: Mapping[str, Any], principal: str) -> str:
        """The run's one-line title: what it does and for whom."""
        about = self.describe_run(data) if self.describe_run else ""
        return f"{self.name}{': ' + about if about else ''} · for {principal}"

    def scopes(self) -> tuple[str, ...]:
        """The standing grant: `default_scopes`, or every scope the agent's tools require."""
        if self.default_scopes is not None:
            return self.default_scopes
        return tuple(sorted({s for t in self.tools for s in t.required_scopes}))

    def tool(self, name: str) -> ToolContract | None:
        return next((t for t in self.tools if t.name == name), None)

    def task_message(self, task: str, data: dict[str, Any]) -> str:
        """The first user message: the task in words, then the validated input as JSON."""
        text = task or f"Carry out the {self.name} task for this input."
        return f"{text}\n\nInput:\n{json.dumps(data, sort_keys=True)}"

    def wait_policy(self, events: list[str]) -> WaitPolicy:
        """The strictest policy among the events waited for."""
        policies = [self.waits[e] for e in events if e in self.waits] or [self.default_wait]
        return min(policies, key=lambda p: p.max_wait)
