"""The typed messages that cross the workflow boundary.

Every workflow, activity, signal, update and query takes one of these models in and gives one
out. New fields always get defaults, so runs already in flight keep decoding after a deploy.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

AgentStatusValue = Literal[
    "running", "waiting_approval", "waiting_event", "needs_attention", "completed", "failed"
]
Outcome = Literal[
    "completed",
    "timed_out",
    "turn_budget_exhausted",
    "gave_up",
    "rejected",
    "compensated",
    "aborted",
    "budget_exhausted",
]
ApprovalState = Literal["pending", "approved", "rejected", "expired"]


class ToolCall(BaseModel):
    """A tool call the model asked for; `id` is unique within a run's conversation."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of the conversation, in a provider-neutral shape."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The conversation is the bulk of every model call's payload in history: leave out
        # fields at their defaults (they decode back to the same message).
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k == "role" or v not in (None, "", [])}


class Usage(BaseModel):
    """Tokens as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    def plus(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class ToolSchema(BaseModel):
    """What the model is told about a tool: its name, purpose and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


class LLMRequest(BaseModel):
    """Input of the `call_llm` activity."""

    route: str
    system: str
    messages: list[Message]
    tools: list[ToolSchema] = Field(default_factory=list)
    max_tokens: int = 1024
    agent: str = ""
    turn: int = 0
    # Per-request provider headers (e.g. the sim's fault injection); never secrets.
    extra_headers: dict[str, str] = Field(default_factory=dict)


class LLMReply(BaseModel):
    """Output of the `call_llm` activity: the assistant's message and what it cost."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    finish_reason: str = ""


class Identity(BaseModel):
    """Who acts: the agent, its run, and the person and scopes it acts for."""

    agent: str
    agent_version: str
    workflow_id: str
    principal: str
    scopes: list[str] = Field(default_factory=list)


class ToolRequest(BaseModel):
    """Input of the `run_tool` activity."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    identity: Identity


class ToolResult(BaseModel):
    """Output of the `run_tool` activity, already checked against the tool's output model."""

    tool: str
    output: dict[str, Any]


class BudgetOverride(BaseModel):
    """Per-run limits, narrowing or widening the spec's (set fields win)."""

    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: Decimal | None = Field(default=None, gt=0)
    deadline_hours: float | None = Field(default=None, gt=0, le=24 * 366)
    on_exhausted: Literal["stop", "ask"] | None = None


class AgentRun(BaseModel):
    """Input of the agent workflow."""

    agent: str
    input: dict[str, Any] = Field(default_factory=dict)
    task: str = ""
    principal: str = "system"
    scopes: list[str] = Field(default_factory=list)
    # Overrides of the spec, e.g. another model route or a smaller turn budget.
    model_route: list[str] | None = None
    max_turns: int | None = None
    llm_attempts: int | None = Field(default=None, ge=1, le=20)
    budget: BudgetOverride | None = None
    compact_at_tokens: int | None = Field(default=None, ge=100)
    depth: int = Field(default=0, ge=0)  # 0 for a run people started; sub-agents count up
    parent: str | None = None


class EventSignal(BaseModel):
    """Payload of the `event` signal: an outside fact an agent may be waiting for."""

    name: str
    payload: dict[str, Any] = Field(default_factory=dict)


class TranscriptEntry(BaseModel):
    """One line of a run's human-readable record."""

    at: datetime
    turn: int
    kind: Literal[
        "task",
        "assistant",
        "tool_call",
        "tool_result",
        "event",
        "wait",
        "note",
        "error",
        "approval",
        "message",
        "compensation",
        "compaction",
    ]
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class EscalationRecord(BaseModel):
    at: datetime
    groups: list[str] = Field(default_factory=list)
    principals: list[str] = Field(default_factory=list)


class Approval(BaseModel):
    """A request for a person's decision on one tool call, and that decision."""

    id: str
    run: str
    tool: str
    tool_call_id: str
    arguments: dict[str, Any]
    digest: str  # of the arguments shown to the approver; a decision may quote it
    summary: str
    rule: str
    requested_at: datetime
    expires_at: datetime
    requested_for: list[str] = Field(default_factory=list)  # principals
    groups: list[str] = Field(default_factory=list)
    escalations: list[EscalationRecord] = Field(default_factory=list)
    state: ApprovalState = "pending"
    decided_by: str | None = None
    reason: str = ""
    decided_at: datetime | None = None


class Decision(BaseModel):
    """Input of the `decide` update and of the `approve`/`reject` signals."""

    approval_id: str | None = None  # None: the run's only pending approval
    approve: bool = True
    approver: str
    reason: str = ""
    digest: str | None = None  # if given, must match what the approver was shown


class AbortRequest(BaseModel):
    """Input of the `abort` signal: an operator ends a run that needs attention."""

    reason: str
    by: str = "operator"


class UserMessage(BaseModel):
    """Input of the `message` update: a follow-up or an answer from the run's principal."""

    text: str
    sender: str


class MessageAck(BaseModel):
    status: Literal["answered", "queued"]
    question: str | None = None


class AgentStatus(BaseModel):
    """Answer of the `status` query."""

    agent: str
    workflow_id: str
    principal: str
    status: AgentStatusValue
    turn: int
    max_turns: int
    usage: Usage
    model_route: list[str]
    waiting_for: str | None = None
    waiting_since: datetime | None = None
    last_error: str | None = None
    events_pending: list[str] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    question: str | None = None  # an ask_human question waiting for the principal
    cost_usd: Decimal = Decimal(0)


class AgentResult(BaseModel):
    """What a finished run returns."""

    agent: str
    outcome: Outcome
    answer: str
    turns: int
    usage: Usage
    cost_usd: Decimal = Decimal(0)  # sub-agents' included
