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
from durable_agents._vocab.schemas import ToolSchema

if TYPE_CHECKING:
    from durable_agents._approvals import ApprovalPolicy
    from durable_agents._mcp import MCPServer

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
    """What the model calls it; unique among a worker's tools."""
    description: str
    """What the model is told the tool does (a `@tool`'s docstring)."""
    input_model: type[BaseModel]
    """The arguments, checked before the tool runs (bad ones go back to the model)."""
    output_model: type[BaseModel]
    """The answer, checked after it runs (one outside it parks the run)."""
    side_effect: SideEffect
    """`read_only`, `reversible` (name its undo in `compensation`) or `irreversible`
    (approval by default)."""
    timeout: timedelta = timedelta(seconds=30)
    """How long one attempt may take (heartbeats keep a long one alive)."""
    max_attempts: int = 5
    """Attempts at a call that fails transiently."""
    required_scopes: tuple[str, ...] = ()
    """Scopes a run must have been granted to call it."""
    compensation: Compensation | None = None
    """What undoes a completed call when a saga unwinds."""
    durable: bool = False
    """Runs in the workflow itself (waits, timers), not as an activity."""
    local: bool = False
    """Run as a local activity (short, read-only tools only): one marker event instead of a
    scheduled/started/completed triple and an extra workflow task, about 700 bytes less history
    per call. Measured here it also costs latency under load (bench.throughput, echo as a local
    activity: 1.20x and 1.38x the baseline's ms per step, against 1.18x and 1.16x without)."""
    implementation: Callable[..., Any] | None = field(default=None, compare=False)
    """The code that carries the call out (`@tool` sets it); None for durable tools."""
    task_queue: str | None = None
    """Only workers that serve this task queue run the tool; None: the run's own queue."""
    parameters: str | None = None
    """The arguments' JSON schema as the model sees it, when not `input_model`'s (an MCP
    server's tool: its input schema as listed, JSON)."""
    mcp_server: str | None = None
    """The MCP server that carries the call out (`call_mcp_tool`); None: the worker's code."""
    audience: str | None = None
    """The system the tool calls, as the identity provider names it: each call gets a token
    for it from the provider (`ToolContext.token`), scoped to `required_scopes`; None: none."""

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
        parameters=json.loads(contract.parameters)
        if contract.parameters is not None
        else contract.input_model.model_json_schema(),
    )


@dataclass(frozen=True)
class WaitPolicy:
    """How long an agent may wait for an outside event, and what a timeout means."""

    max_wait: timedelta
    """The longest the agent may wait, whatever timeout the model asks for."""
    on_timeout: Literal["tell_model", "end_run"] = "tell_model"
    """`tell_model`: the timeout goes back to the model as the tool's result; `end_run`: the
    run ends as `timed_out` without another model turn."""


@dataclass(frozen=True)
class RunawayPolicy:
    """When an agent counts as running away, and what then happens."""

    max_repeats: int = 3
    """Times the same tool call with the same arguments may be made."""
    max_idle_turns: int = 5
    """Turns in a row without a new successful tool call."""
    on_detect: Literal["park", "ask"] = "park"
    """`park` for an operator, or `ask` a person whether the run may go on."""
    groups: tuple[str, ...] = ("operators",)
    """Who is asked, with `on_detect="ask"`."""
    ask_for: timedelta = timedelta(days=1)
    """How long the question stays open (no answer: the run stops)."""


@dataclass(frozen=True)
class AgentSpec:
    """Everything that makes an agent: prompt, model route, tools, limits."""

    name: str
    """Unique among the agents a worker serves; what `agentctl run NAME` starts."""
    version: str
    """The agent's version, in its identity and the audit trail."""
    description: str
    """One sentence for `agentctl agents`."""
    system_prompt: str
    """What the model is told first, every turn."""
    model_route: tuple[str, ...]
    """Models to use, first choice first (`openai:gpt-4.1`, `anthropic:…`, `openai-compatible:
    <base_url>:<model>`); the next takes over when one is unavailable."""
    tools: tuple[ToolContract, ...]
    """What the agent may call: tools made with `@tool`, and the built-in durable tools
    (`WAIT_FOR_EVENT`, `SLEEP_UNTIL`, `ASK_HUMAN`, `SPAWN_AGENT`)."""
    input_model: type[BaseModel]
    """The run's structured input, checked by `agentctl run` and again by the run."""
    max_turns: int = 20
    """Model turns a run may take before it stops with a partial answer."""
    max_tool_errors: int = 3
    """Unknown tools and bad arguments fed back to the model before the run gives up."""
    max_repairs: int = 2
    """Malformed model replies answered with a repair message before the run parks."""
    llm_timeout: timedelta = timedelta(seconds=120)
    """How long one model call may take."""
    llm_attempts: int = 6
    """Attempts at one model (Temporal's retries) before the next in the route takes over."""
    max_tokens: int = 1024
    """Output tokens the model may write per turn."""
    waits: Mapping[str, WaitPolicy] = field(default_factory=dict)
    """How long the agent may wait for each named outside event, and what a timeout means."""
    default_wait: WaitPolicy = WaitPolicy(max_wait=timedelta(days=30))
    """The wait policy of events not named in `waits`."""
    approvals: ApprovalPolicy | None = None
    """Which tool calls wait for a person, and who decides; None: irreversible tools ask."""
    saga: bool = False
    """Run the compensations of completed reversible steps, newest first, when an approval is
    refused or a step fails for good."""
    runaway: RunawayPolicy = RunawayPolicy()
    """When the agent counts as running away (repeated calls, idle turns), and what then."""
    budget: Budget = Budget()
    """Tokens, cost and deadline a run may spend; a run may narrow or widen them."""
    compact_at: float = 0.8
    """Compact older turns into a summary past this share of the model's context window."""
    max_depth: int = 2
    """How deep a tree of sub-agents may grow below a run people started."""
    max_children: int = 3
    """Sub-agents running at once."""
    default_scopes: tuple[str, ...] | None = None
    """What a run is granted when whoever starts it names no scopes; None: every scope its
    tools and their compensations require."""
    inline_result_bytes: int = 16_000
    """Tool results larger than this (bytes of JSON) stay out of history, in the message
    store."""
    large_results: Literal["full", "preview"] = "full"
    """What the model reads of a large result: all of it, or the first `preview_chars`."""
    preview_chars: int = 2000
    """Characters of a large result's preview."""
    describe_run: Callable[[Mapping[str, Any]], str] | None = None
    """A run's title in a few words, from its validated input (the Temporal UI's summary and
    listings, e.g. "refund 250.00 on order O-1"); None: the agent's name."""
    upgrade: Literal["next_turn", "pinned"] = "next_turn"
    """When a new version of the workers becomes current (Worker Deployment Versioning):
    `next_turn` continues the run as new onto it at its next turn boundary, state, waits,
    approvals and budget carried over; `pinned` finishes the run on the version that started
    it (e.g. a saga that must unwind with the code that made its steps)."""
    live_text: bool = True
    """Stream the model's replies and publish their text as it is written on the run's live
    stream (`agentctl watch`, the console; either wire format). A reply whole within the first
    100 ms sends no piece (its step carries the text). False: the model is called without
    streaming; the run's steps are on its stream either way."""
    mcp_servers: tuple[MCPServer, ...] = ()
    """MCP servers whose tools the agent may call (`durable_agents.MCPServer`): listed once per
    run, each call an activity with an idempotency key, approvals and audit as for `tools`."""

    def run_summary(self, data: Mapping[str, Any], principal: str) -> str:
        """The run's one-line title: what it does and for whom."""
        about = self.describe_run(data) if self.describe_run else ""
        return f"{self.name}{': ' + about if about else ''} · for {principal}"

    def scopes(self) -> tuple[str, ...]:
        """The standing grant: `default_scopes`, or every scope the agent's tools require."""
        if self.default_scopes is not None:
            return self.default_scopes
        mcp = {
            s
            for server in self.mcp_servers
            for terms in [*server.tools.values(), None]
            for s in (server.scopes if terms is None or terms.scopes is None else terms.scopes)
        }
        return tuple(sorted({s for t in self.tools for s in t.required_scopes} | mcp))

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
