"""Keeping a run's history linear: the conversation by reference, and no payload over the limit.

Every message's content enters history once: the run's input, a `run_tool` result or a
`call_llm` reply (the activities store what they produce), or, for what the workflow itself
writes (tool errors, follow-ups), the first model call that sends it. Later calls name the
conversation by the chain head of what the store holds plus the few messages after it. What the
workflow believes is stored is only a belief: an activity that misses something says so
(`ConversationMissing`) and the next attempt sends that content again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab import chain
    from durable_agents._vocab import failures as f
    from durable_agents._vocab.names import RECOVER_CONVERSATION
    from durable_agents._vocab.schemas import (
        ConversationRef,
        Message,
        RecoverRequest,
        TailItem,
        ToolSchema,
    )
    from durable_agents.workflows import mcp_tools
    from durable_agents.workflows.state import RunState

# Temporal's default blob limit is 2 MiB (`limit.blobSize.error`); stay clear of it, with room
# for a codec's envelope.
DEFAULT_MAX_PAYLOAD = 1_800_000
RESENDS = 3  # attempts at a model call whose conversation the store lacked


class TooLarge(Exception):
    """A payload the workflow will not schedule: it would fail the workflow task forever."""

    def __init__(self, payload: str, size: int, limit: int) -> None:
        self.payload, self.size, self.limit = payload, size, limit
        super().__init__(
            f"{payload} would be {size:,} bytes, over the limit of {limit:,} bytes "
            "(AgentRun.max_payload_bytes)"
        )

    def error(self) -> ApplicationError:
        return ApplicationError(
            str(self),
            {"payload": self.payload, "bytes": self.size, "limit": self.limit},
            type=f.PAYLOAD_TOO_LARGE,
            non_retryable=True,
        )


def size_of(value: Any) -> int:
    """Bytes of `value` as Temporal will carry it (before any codec)."""
    return int(workflow.payload_converter().to_payloads([value])[0].ByteSize())


def check_size(value: Any, what: str, limit: int) -> None:
    size = size_of(value)
    if size > limit:
        raise TooLarge(what, size, limit)


def hashes(state: RunState) -> list[str]:
    """Hashes of the run's messages (after the carried base), computed once each."""
    return state.message_hashes()


def heads(state: RunState) -> list[str]:
    return state.chain_heads()


def preamble(state: RunState, spec: AgentSpec) -> tuple[str, list[ToolSchema]]:
    """The system prompt and tool schemas to send as content: nothing once the store has them."""
    if state.store.preamble and state.store.preamble in state.store.objects:
        return "", []
    tools = mcp_tools.schemas(state, spec)
    if not state.store.preamble:
        state.store.preamble = chain.digest(chain.encode_preamble(spec.system_prompt, tools))
    return spec.system_prompt, tools


def reference(state: RunState, messages: list[Message]) -> ConversationRef:
    """`messages` (the run's conversation, maybe plus a repair message) by reference."""
    own = hashes(state)
    all_hashes = own + [chain.message_hash(m) for m in messages[len(own) :]]
    k = min(state.store.prefix, len(own))
    base = heads(state)[k - 1] if k else state.store.base
    stored = set(state.store.objects)
    tail = [
        TailItem(hash=h, message=None if h in stored else m)
        for h, m in zip(all_hashes[k:], messages[k:], strict=True)
    ]
    return ConversationRef(
        base=base,
        base_length=state.store.base_length + k,
        tail=tail,
        preamble=state.store.preamble,
    )


def replied(state: RunState, sent: int, reply: Message, plain: bool) -> None:
    """After a model call on the first `sent` messages: those are stored with their links,
    and so is the reply (linked to them when no repair message came between)."""
    state.store.prefix = sent + 1 if plain else sent
    state.store.objects = [state.store.preamble, chain.message_hash(reply)]


def produced(state: RunState, message: Message) -> None:
    """A message an activity stored as it produced it (a tool result, a summary)."""
    state.store.objects.append(chain.message_hash(message))


def lacked(state: RunState, err: ActivityError, attempt: int) -> bool:
    """Whether `err` says the store lacked part of what an activity was sent by reference and
    another attempt is left; if so, what it lacked is marked to go as content next time."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != f.CONVERSATION_MISSING:
        return False
    if attempt + 1 >= RESENDS:
        return False
    missing(state, cause.details[0] if cause.details else {"base": True})
    state.note("note", f"the message store lacked part of the conversation: {cause.message}")
    return True


def missing(state: RunState, details: dict[str, Any]) -> None:
    """The store lacked what `details` (from ConversationMissing) lists: send it again."""
    gone = set(details.get("messages") or [])
    if details.get("base"):
        state.store.prefix = 0
    own = hashes(state)
    # A carried base (its links or messages) exists only in earlier runs' histories: recover
    # it from there.
    lost = bool(details.get("base")) or bool(gone - set(own))
    state.store.recover = state.store.base is not None and lost
    first = next((i for i, h in enumerate(own) if h in gone), None)
    if first is not None:
        state.store.prefix = min(state.store.prefix, first)
    drop = gone | ({state.store.preamble} if details.get("preamble") else set())
    state.store.objects = [h for h in state.store.objects if h not in drop]


def individually_stored(state: RunState) -> set[str]:
    """Hashes of the messages the store holds on their own (each prefix message is)."""
    own = hashes(state)
    return set(own[: state.store.prefix]) | set(state.store.objects)


def replace_messages(state: RunState, messages: list[Message], also_stored: list[str]) -> None:
    """A new conversation (after a compaction): the chain starts again from its first message,
    and whatever was stored before still is."""
    known = individually_stored(state) | set(also_stored)
    state.messages = messages
    state.store.hashes, state.store.heads = [], []
    state.store.base, state.store.base_length, state.store.base_chars = None, 0, 0
    state.store.first = None
    state.store.prefix = 0
    state.store.objects = [state.store.preamble] + [h for h in hashes(state) if h in known]


async def recover(state: RunState) -> None:
    """If the store lacked the carried base (a wiped store after a continue-as-new), the
    `recover_conversation` activity writes it back from the chain's earlier histories, where
    every message's content is; the next attempt finds it."""
    if not state.store.recover or state.store.base is None:
        return
    state.store.recover = False
    info = workflow.info()
    found = await workflow.execute_activity(
        RECOVER_CONVERSATION,
        RecoverRequest(
            workflow_id=info.workflow_id,
            run_id=info.continued_run_id or "",
            head=state.store.base,
            length=state.store.base_length,
        ),
        result_type=bool,
        start_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=timedelta(seconds=30),
        summary=f"recover the conversation's first {state.store.base_length} messages",
    )
    state.note(
        "note",
        f"the message store lacked the conversation's first {state.store.base_length} messages: "
        + ("recovered from earlier runs' histories" if found else "not found in earlier runs"),
    )
