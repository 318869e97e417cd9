"""The typed messages that cross the workflow boundary.

Every workflow, activity, signal, update and query takes one of these models in and gives one
out. New fields always get defaults, so runs already in flight keep decoding after a deploy.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StrictBool,
    field_validator,
    model_serializer,
    model_validator,
)

if TYPE_CHECKING:
    from durable_agents._vocab.carried import CarriedState

AgentStatusValue = Literal[
    "running",
    "waiting_approval",
    "waiting_event",
    "needs_attention",
    # Terminal: how the run ended. `failed` means a failure; the others are outcomes.
    "completed",
    "rejected",
    "aborted",
    "timed_out",
    "budget_exhausted",
    "failed",
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


class Compact(BaseModel):
    """A model whose JSON leaves out fields at their defaults: activity inputs and results are
    in history for every step, and the defaults decode back the same."""

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, default in _defaults(type(self)):
            if name in data and getattr(self, name) == default:
                del data[name]
        return data


_DEFAULTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _defaults(cls: type[BaseModel]) -> tuple[tuple[str, Any], ...]:
    """A model's optional fields and their defaults, worked out once per class (only compared,
    never handed out, so a shared default list is safe)."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = _DEFAULTS[cls] = tuple(
            (name, info.get_default(call_default_factory=True))
            for name, info in cls.model_fields.items()
            if not info.is_required()
        )
    return found


class ToolCall(BaseModel):
    """A tool call the model asked for; `id` is unique within a run's conversation."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class BlobRef(Compact):
    """Content kept outside history (a large tool result), by its hash."""

    hash: str
    size: int  # bytes of the stored content
    view: Literal["full", "preview"] = "full"  # what the model reads: all of it, or the preview


class Message(BaseModel):
    """One message of the conversation, in a provider-neutral shape.

    A message with a `blob` carries a preview as its content; the full content lives in the
    message store under the blob's hash.
    """

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    blob: BlobRef | None = None

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The conversation is the bulk of every model call's payload in history: leave out
        # fields at their defaults (they decode back to the same message).
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k == "role" or v not in (None, "", [])}


class Usage(Compact):
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


class TailItem(Compact):
    """A message after the stored base of a conversation: by hash, with content if not stored."""

    hash: str
    message: Message | None = None


class ConversationRef(Compact):
    """A conversation by reference (durable_agents/_vocab/chain.py).

    `base` is the chain head of a prefix the message store already holds (`base_length`
    messages); `tail` are the messages after it. `preamble` is the hash of the system prompt and
    tool schemas, sent as content (`LLMRequest.system`, `.tools`) only when not yet stored.
    """

    base: str | None = None
    base_length: int = 0
    tail: list[TailItem] = Field(default_factory=list)
    preamble: str = ""


class RecoverRequest(Compact):
    """Input of `recover_conversation`: the conversation (`length` messages under the chain
    head `head`) to write back into the message store from the histories of the runs of
    `workflow_id` that came before `run_id` (that run included)."""

    workflow_id: str
    run_id: str
    head: str
    length: int


class LLMRequest(Compact):
    """Input of the `call_llm` activity.

    Either the whole conversation as content (`messages`, the way runs started before the
    message store did it) or `conversation`, a reference the activity resolves from the store.
    """

    route: str
    system: str = ""
    messages: list[Message] = Field(default_factory=list)
    tools: list[ToolSchema] = Field(default_factory=list)
    conversation: ConversationRef | None = None
    max_tokens: int = 1024
    agent: str = ""
    turn: int = 0
    # Per-request provider headers (e.g. a test server's fault injection); never secrets.
    extra_headers: dict[str, str] = Field(default_factory=dict)
    # Stream the reply and publish its text as it comes on the run's live stream (topic
    # `text`); the reply returned, and recorded in history, is the whole one all the same.
    live_text: bool = False


class LLMReply(Compact):
    """Output of the `call_llm` activity: the assistant's message and what it cost."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    finish_reason: str = ""
    degraded: list[str] = Field(default_factory=list)  # e.g. a large result read as preview


class Identity(Compact):
    """Who acts: the agent, its run, and the person and scopes it acts for."""

    agent: str
    agent_version: str
    workflow_id: str
    principal: str
    scopes: list[str] = Field(default_factory=list)
    # The agent the principal granted these scopes to (a sub-agent acts under its root run's
    # grant); "" for the agent itself. The identity provider checks the grant by it.
    granted_to: str = ""


class ResultHandling(Compact):
    """How `run_tool` hands back its result: stored as the run's next message, and a result
    larger than `inline_bytes` kept in the store and passed by reference."""

    tool_call_id: str
    inline_bytes: int = 16_000
    view: Literal["full", "preview"] = "full"
    preview_chars: int = 2000


class ToolRequest(Compact):
    """Input of the `run_tool` activity."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    identity: Identity
    result: ResultHandling | None = None  # None: the whole output in history, nothing stored
    mcp: MCPTarget | None = None  # an MCP server's tool (`call_mcp_tool`), not the worker's own


class ToolResult(Compact):
    """Output of the `run_tool` activity, already checked against the tool's output model.

    A result passed by reference has an empty `output`, a `preview` and a `blob`.
    """

    tool: str
    output: dict[str, Any]
    preview: str = ""
    blob: BlobRef | None = None


class BudgetOverride(BaseModel):
    """Per-run limits, narrowing or widening the spec's (set fields win)."""

    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: Decimal | None = Field(default=None, gt=0)
    deadline_hours: float | None = Field(default=None, gt=0, le=24 * 366)
    on_exhausted: Literal["stop", "ask"] | None = None


class AgentRun(BaseModel):
    """Input of the agent workflow.

    Unknown fields are kept, not dropped, so the run can refuse them with a clear reason (a
    payload the workflow could not decode would fail its first task instead)."""

    model_config = ConfigDict(extra="allow")

    agent: str
    input: dict[str, Any] = Field(default_factory=dict)
    task: str = ""
    principal: str = "system"
    # Granted scopes; None: the agent's standing grant (AgentSpec.default_scopes).
    scopes: list[str] | None = None
    # Overrides of the spec, e.g. another model route or a smaller turn budget.
    model_route: list[str] | None = None
    max_turns: int | None = None
    llm_attempts: int | None = Field(default=None, ge=1, le=20)
    budget: BudgetOverride | None = None
    compact_at_tokens: int | None = Field(default=None, ge=100)
    depth: int = Field(default=0, ge=0)  # 0 for a run people started; sub-agents count up
    parent: str | None = None
    # The proof of the person who started the run (README: "People prove who they are"); the
    # run acts for its subject. None: a run code started, for a service principal.
    proof: str | None = None
    # A sub-agent: the agent whose grant it acts under (its root run's).
    granted_to: str | None = None
    # History: continue as new past this many bytes (or when Temporal suggests it); no activity
    # input may pass `max_payload_bytes`; "inline" sends the whole conversation with every model
    # call (the naive way, kept for benchmarks), "reference" sends it by hash.
    continue_after_bytes: int | None = Field(default=None, ge=10_000)
    max_payload_bytes: int | None = Field(default=None, ge=1_000)
    conversation: Literal["reference", "inline"] = "reference"
    # Set by the run itself when it continues as new: its state, and how many times it has.
    carried: CarriedState | None = None
    continued: int = 0


# Bounds on what people and ops tools send into a run (README: "Messages a run takes").
MAX_REASON = 2_000  # characters of a decision's or an abort's reason
MAX_TEXT = 8_000  # characters of a message to the run
MAX_EVENT_PAYLOAD = 16_000  # bytes of an event's payload, as compact JSON
MAX_INBOUND_BYTES = 64_000  # bytes of any one message as it arrives, before it is read
MAX_PROOF = 8_000  # characters of a person's proof (a JWT)
MAX_PERSON = 200  # characters of a name as sent (normalised and checked against the directory)
EVENT_NAME = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"
APPROVAL_ID = r"^[a-z_]+-[0-9]{1,6}$"
DIGEST = r"^[0-9a-f]{16}$"


class Inbound(BaseModel):
    """A message into a run: unknown fields are refused, strings are not coerced to numbers
    or booleans, and every text is bounded. The workflow reads each one with
    `workflows.inbound`, which also checks names against the directory."""

    model_config = ConfigDict(extra="forbid", strict=True)


class EventSignal(Inbound):
    """Payload of the `event` signal: an outside fact an agent may be waiting for."""

    name: str = Field(pattern=EVENT_NAME)
    payload: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("payload")
    @classmethod
    def _bounded(cls, payload: dict[str, JsonValue]) -> dict[str, JsonValue]:
        size = len(json.dumps(payload, separators=(",", ":")).encode())
        if size > MAX_EVENT_PAYLOAD:
            raise ValueError(
                f"the payload is {size:,} bytes of JSON, over the limit of {MAX_EVENT_PAYLOAD:,}: "
                "send a reference (an id or URL) instead"
            )
        return payload


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
        "refused",
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
    # The proof the decision came with: its id and issuer (empty for decisions made before
    # proofs, or by the run itself: an expiry).
    proof_id: str = ""
    proof_issuer: str = ""
    # The proof itself: evidence `agentctl audit RUN --verify` checks against the provider's
    # keys. Bound to this one decision and used up, it authorises nothing else.
    proof: str = ""
    # The arguments a person may change before approving (the rule's `editable`); empty: none.
    editable: list[str] = Field(default_factory=list)
    # Approved with edits: the arguments the tool ran with, their digest, and who edited
    # (`decided_by`, with the proof naming both digests); `arguments` and `digest` stay what
    # the model asked for.
    edited_arguments: dict[str, Any] | None = None
    edited_digest: str = ""


class Decision(Inbound):
    """Input of the `decide` update and of the `approve`/`reject` signals.

    `approve` is always required, also with the signals (where it must agree with the
    signal's name): a decision is never read from a default. Who decides is the subject of
    `proof` (README: "Proofs"); `approver`, if given, must be that subject.
    """

    approve: StrictBool
    approver: str | None = Field(default=None, min_length=1, max_length=MAX_PERSON)
    approval_id: str | None = Field(default=None, pattern=APPROVAL_ID)  # None: the only one
    reason: str = Field(default="", max_length=MAX_REASON)
    digest: str | None = Field(default=None, pattern=DIGEST)  # must match what was shown
    proof: str | None = Field(default=None, min_length=1, max_length=MAX_PROOF)
    # Edit then approve (a rule with `editable`): every argument of the call, as the tool is
    # to run with them; the proof names their digest too.
    arguments: dict[str, JsonValue] | None = None

    @field_validator("arguments")
    @classmethod
    def _bounded_arguments(cls, arguments: dict[str, JsonValue] | None) -> Any:
        if arguments is None:
            return None
        size = len(json.dumps(arguments, separators=(",", ":")).encode())
        if size > MAX_EVENT_PAYLOAD:
            raise ValueError(
                f"the edited arguments are {size:,} bytes of JSON, over the limit of "
                f"{MAX_EVENT_PAYLOAD:,}"
            )
        return arguments

    @model_validator(mode="after")
    def _edits_only_approve(self) -> Decision:
        if self.arguments is not None and not self.approve:
            raise ValueError("edited arguments come only with an approval (approve: true)")
        return self


class AbortRequest(Inbound):
    """Input of the `abort` signal: an operator ends a run that needs attention."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)
    by: str | None = Field(default=None, min_length=1, max_length=MAX_PERSON)
    proof: str | None = Field(default=None, min_length=1, max_length=MAX_PROOF)


class MoveRequest(Inbound):
    """Input of the `move` signal: a deploy tool wakes a waiting run to move it onto the
    deployment's new version. It decides nothing, so it needs no proof."""

    reason: str = Field(default="", max_length=MAX_REASON)


class OperatorRequest(Inbound):
    """Input of the `resume` and `retry_turn` signals: who asks, and why."""

    by: str | None = Field(default=None, min_length=1, max_length=MAX_PERSON)
    reason: str = Field(default="", max_length=MAX_REASON)
    proof: str | None = Field(default=None, min_length=1, max_length=MAX_PROOF)


class UserMessage(Inbound):
    """Input of the `message` update: a follow-up or an answer from the run's principal."""

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    sender: str | None = Field(default=None, min_length=1, max_length=MAX_PERSON)
    proof: str | None = Field(default=None, min_length=1, max_length=MAX_PROOF)


class ProofCheck(BaseModel):
    """Input of the `verify_proof` activity: a person's proof, as their message carried it."""

    token: str
    as_evidence: bool = False  # valid when it was issued (a root run's start, for a child)


class Proven(BaseModel):
    """Output of `verify_proof`: what a valid proof says, its signature checked."""

    subject: str
    issuer: str
    proof_id: str
    expires_at: datetime
    details: dict[str, Any]
    kid: str = ""


class RefusedMessage(BaseModel):
    """A signal the run would not take: kept (the latest few) for `status` and the transcript."""

    at: datetime
    handler: str
    sender: str  # as the message claimed it, or "unknown"
    reason: str


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
    waiting_until: datetime | None = None  # when the wait gives up
    last_error: str | None = None
    events_pending: list[str] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    question: str | None = None  # an ask_human question waiting for the principal
    cost_usd: Decimal = Decimal(0)
    continued: int = 0  # times the run continued as new (it is still one run)
    history_bytes: int = 0  # of the current run of the chain
    refused: list[RefusedMessage] = Field(default_factory=list)  # the latest refused signals
    # Worker Deployment Versioning: the build id of the code running the run now, and every
    # build it has run on (a run upgraded at turn boundaries lists several).
    build_id: str | None = None
    builds: list[str] = Field(default_factory=list)
    agent_version: str = ""  # the spec's version acting now (it changes when a run upgrades)


class AgentResult(BaseModel):
    """What a finished run returns."""

    agent: str
    outcome: Outcome
    answer: str
    turns: int
    usage: Usage
    cost_usd: Decimal = Decimal(0)  # sub-agents' included


# ---- the audit log and compaction (activities/audit.py, activities/compaction.py) ----

AuditKind = Literal["side_effect", "side_effect_failed", "refused", "approval", "start", "operator"]


class AuditEntry(BaseModel):
    """What happened, who did it, for whom, under which grant, and who approved it."""

    key: str  # idempotency key, or <run>/<approval id>
    kind: AuditKind
    run: str
    agent: str = ""
    agent_version: str = ""
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)  # the run's grant at the time
    tool: str = ""
    side_effect: str = ""
    approver: str | None = None
    outcome: str = ""  # e.g. "ok", "approved", "rejected", "expired", an error type
    details: dict[str, Any] = Field(default_factory=dict)


def entry_for(who: Identity, key: str, kind: AuditKind, **fields: Any) -> AuditEntry:
    """An entry in the name of a run's identity."""
    return AuditEntry(
        key=key,
        kind=kind,
        run=who.workflow_id,
        agent=who.agent,
        agent_version=who.agent_version,
        principal=who.principal,
        scopes=who.scopes,
        **fields,
    )


class SummarizeRequest(BaseModel):
    """The messages to summarise: as content (`messages`), or by reference (`conversation`, in
    which case the summary is stored as a message too)."""

    route: str
    messages: list[Message] = Field(default_factory=list)
    conversation: ConversationRef | None = None
    agent: str = ""
    turn: int = 0
    max_tokens: int = 1024


class Summary(BaseModel):
    text: str
    usage: Usage = Field(default_factory=Usage)
    model: str = ""


# ---- MCP (activities/mcp.py; durable_agents/_mcp.py says what a spec may ask) ----


class MCPTool(Compact):
    """One tool of an MCP server as a run recorded it: what the model sees and the terms of
    its calls. Recorded in history by the listing activity, so replay never asks the server."""

    server: str
    name: str  # on the server
    exposed: str  # what the model calls it
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    side_effect: Literal["read_only", "reversible", "irreversible"]
    scopes: list[str] = Field(default_factory=list)
    timeout_seconds: float = 30.0
    max_attempts: int = 3


class MCPListRequest(Compact):
    """Input of the `list_mcp_tools` activity: one server of one agent."""

    agent: str
    server: str
    native: list[str] = Field(default_factory=list)  # names the agent's own tools already use


class MCPToolList(Compact):
    """Output of the `list_mcp_tools` activity."""

    server: str
    tools: list[MCPTool] = Field(default_factory=list)
    left_out: list[str] = Field(default_factory=list)  # by allow/deny


class MCPTarget(Compact):
    """Which server and tool a `call_mcp_tool` request is for, with the terms recorded."""

    agent: str
    server: str
    tool: str
    side_effect: Literal["read_only", "reversible", "irreversible"]
    scopes: list[str] = Field(default_factory=list)


# Forward references: AgentRun carries a run's state (carried.py, which builds on the models
# above); ToolRequest may name an MCP target (defined above, after it).
from durable_agents._vocab.carried import CarriedState  # noqa: E402

AgentRun.model_rebuild()
ToolRequest.model_rebuild()
