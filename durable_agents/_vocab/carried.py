"""A run's state as data: what one run of a chain hands the next when it continues as new.

`workflows.state.RunState` adds the behaviour (it may call `workflow.*`); this module is the
shape alone, typed, so `AgentRun.carried` is checked like any other input. The state is grouped
by concern: the conversation and its record at the top, then what the run waits for, the saga,
the operator's part, runaway detection, spending, the message store and the chain of runs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from durable_agents._vocab.schemas import (
    AgentStatusValue,
    Approval,
    EventSignal,
    Identity,
    MCPTool,
    Message,
    Outcome,
    RefusedMessage,
    TranscriptEntry,
    Usage,
)

OperatorAction = Literal["resume", "retry_turn", "abort"]


class ReceivedEvent(BaseModel):
    event: EventSignal
    at: datetime


class Question(BaseModel):
    """What the agent asked its principal (`ask_user`), and the answer once given."""

    text: str
    asked_at: datetime
    call_id: str = ""
    answer: str | None = None
    answered_by: str | None = None


class Waiting(BaseModel):
    """What the run waits for, and what came in while it did not."""

    # Outside events, in arrival order, kept until a wait takes them: an early one is not lost.
    inbox: list[ReceivedEvent] = Field(default_factory=list)
    waiting_for: str | None = None
    waiting_since: datetime | None = None
    waiting_until: datetime | None = None  # when the wait gives up (expires, times out)
    waits: dict[str, datetime] = Field(default_factory=dict)  # durable tool call id -> began
    question: Question | None = None
    follow_ups: list[Message] = Field(default_factory=list)  # `message`s not answering a question


class PendingCompensation(BaseModel):
    """The undo of a completed reversible step, run if the saga unwinds."""

    step: str
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str


class Saga(BaseModel):
    """The undo steps owed, newest last, and why and how the run must be undone (if it must)."""

    compensations: list[PendingCompensation] = Field(default_factory=list)
    unwinding: str | None = None
    unwind_outcome: Outcome | None = None


class Parking(BaseModel):
    """A run parked for an operator: why, and what the operator asked for."""

    reason: str | None = None
    action: OperatorAction | None = None
    abort_reason: str = ""


class Progress(BaseModel):
    """What runaway detection and the bad-call limits count."""

    call_counts: dict[str, int] = Field(default_factory=dict)  # tool call + arguments -> times
    idle_turns: int = 0
    successes: int = 0  # tool calls that returned a result
    tool_errors: int = 0
    repairs: int = 0
    # The turn in progress, so a run continued in its middle can finish it.
    turn_fresh: int = 0  # tool calls of this turn never made before
    turn_successes: int = 0  # successes before this turn's tool calls


class Spending(BaseModel):
    """Money and tokens beyond `usage`: what was spent, extended and lent to sub-agents."""

    cost_usd: Decimal = Decimal(0)
    budget_extensions: int = 0
    reserved_tokens: int = 0  # budget handed to sub-agents still running
    active_children: int = 0


class Stored(BaseModel):
    """History by reference (workflows/payloads.py): what the message store holds. `hashes` and
    `heads` are caches, rebuilt after a continue-as-new; the first `prefix` messages (after the
    carried `base`) are in the store with their chain links, `objects` are hashes of other
    things believed stored (the preamble, tool results)."""

    by_reference: bool = False
    max_payload: int = 1_800_000
    preamble: str = ""
    # Carried by reference (a run that continued as new): the conversation starts with
    # `base_length` messages the store holds under the chain head `base` (their content is in
    # earlier runs' histories, where `recover_conversation` finds it if the store lost it), then
    # `messages`. `base_chars` is their size for compaction's estimate; `first` is the
    # conversation's first message (the task), which a compaction keeps.
    base: str | None = None
    base_length: int = 0
    base_chars: int = 0
    first: Message | None = None
    prefix: int = 0
    objects: list[str] = Field(default_factory=list)
    hashes: list[str] = Field(default_factory=list, exclude=True)
    heads: list[str] = Field(default_factory=list, exclude=True)
    recover: bool = Field(default=False, exclude=True)  # the store lacked the base: recover it


class Chain(BaseModel):
    """Continue-as-new (`RunState.continue_due`): past `after` bytes of history, or when
    Temporal suggests it, at the next safe point."""

    after: int | None = None
    history_at_start: int = Field(default=0, exclude=True)  # bytes and events when this
    events_at_start: int = Field(default=0, exclude=True)  # run (of the chain) began
    blocked_below: int = 0  # history size under which not to try again
    continued: int = 0  # how many times the run has continued as new
    # When the chain's first run started, which the deadline counts from (Temporal gives each
    # run its own start time, and no first one). None in chains begun before it was recorded.
    started_at: datetime | None = None
    # Worker Deployment Versioning: whether the run moves onto a new current version at its
    # next safe point (the spec's `upgrade="next_turn"`), and the build ids it has run on.
    upgrade: bool = False
    builds: list[str] = Field(default_factory=list)


class MCPState(BaseModel):
    """The MCP tools the run has listed (workflows/mcp.py), and which servers it has asked."""

    tools: list[MCPTool] = Field(default_factory=list)
    listed: list[str] = Field(default_factory=list)


class CarriedState(BaseModel):
    """Everything a run knows, as one serialisable model."""

    status: AgentStatusValue = "running"
    turn: int = 0
    usage: Usage = Field(default_factory=Usage)
    messages: list[Message] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    last_error: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    route_index: int = 0  # which model of the route serves the run (after fallbacks)
    compactions: int = 0
    # The scopes granted at the start (None until the run has started), checked before every
    # tool call, and who acts.
    scopes: list[str] | None = None
    identity: Identity | None = None
    # Signals the run would not take: the latest few, and how many in all.
    refused: list[RefusedMessage] = Field(default_factory=list)
    refused_count: int = 0
    # People's proofs the run has taken (id -> expiry), kept until they expire: each is good
    # for one message.
    proofs_used: dict[str, datetime] = Field(default_factory=dict)
    messages_taken: int = 0  # people's messages handled (each its own patch marker)
    # Who started the run, as the identity provider proved it: subject, issuer, proof id
    # (None: started by code for a service principal, or before proofs).
    started_by: dict[str, str] | None = None
    waiting: Waiting = Field(default_factory=Waiting)
    saga: Saga = Field(default_factory=Saga)
    parking: Parking = Field(default_factory=Parking)
    progress: Progress = Field(default_factory=Progress)
    spending: Spending = Field(default_factory=Spending)
    # The run's live stream (workflows/live.py), its newest events carried across
    # continue-as-new; None before the stream, or on a chain's first run.
    live: WorkflowStreamState | None = None
    store: Stored = Field(default_factory=Stored)
    chain: Chain = Field(default_factory=Chain)
    mcp: MCPState = Field(default_factory=MCPState)
