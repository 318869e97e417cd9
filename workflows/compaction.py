"""Compaction: older turns replaced by a summary, as a recorded, auditable step.

The task message and the latest turns stay as they are; a turn's tool results are never split
from the call that asked for them. Triggered before a model call when the conversation's
estimated size passes the limit, or after the provider said the context window is exceeded.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_agents._routes import parse_route
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab import chain
    from durable_agents._vocab import failures as f
    from durable_agents._vocab.names import SUMMARIZE
    from durable_agents._vocab.schemas import (
        ConversationRef,
        Message,
        SummarizeRequest,
        Summary,
        TailItem,
    )
    from durable_agents.workflows import catalog, payloads
    from durable_agents.workflows.state import RunState, chars

KEEP_RECENT = 4  # messages kept verbatim at the end
SUMMARY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=f.LLM_NON_RETRYABLE,
)


def estimated_tokens(spec: AgentSpec, messages: list[Message], carried_chars: int = 0) -> int:
    """About four characters a token: enough to decide when to compact. `carried_chars`: the
    size of the messages carried by reference (`Stored.base_chars`)."""
    return (len(spec.system_prompt) + carried_chars + chars(messages)) // 4


def limit(spec: AgentSpec, route: str, override: int | None) -> int | None:
    if override:
        return override
    window = catalog.current().models.context_window(parse_route(route).model)
    return int(window * spec.compact_at) if window else None


def _request(
    state: RunState, spec: AgentSpec, route: str, older: list[Message], split: int
) -> SummarizeRequest:
    request = SummarizeRequest(route=route, agent=spec.name, turn=state.turn)
    if not state.store.by_reference:
        request.messages = older
        return request
    # By hash: the older messages are in the store already (or the activity says which are not,
    # and they go as content in the next attempt).
    stored = payloads.individually_stored(state)
    own = payloads.hashes(state)[split - len(older) : split]
    request.conversation = ConversationRef(
        # A conversation carried by reference: its carried part, task included, by its head.
        base=state.store.base,
        base_length=state.store.base_length,
        tail=[
            TailItem(hash=h, message=None if h in stored else m)
            for h, m in zip(own, older, strict=True)
        ],
    )
    return request


async def compact(state: RunState, spec: AgentSpec, route: str, why: str) -> bool:
    """Replace older turns by a summary; False if there is nothing left to compact."""
    messages = state.messages
    # The task stays; carried by reference, it is the carried base's first message.
    first = state.store.first if state.store.base is not None else None
    start = 0 if first is not None else 1
    split = len(messages) - KEEP_RECENT
    while split > start and messages[split].role != "assistant":
        split -= 1  # the kept tail starts with a model turn, never with orphan tool results
    if split < start or (split == start and first is None):
        return False
    older = messages[start:split]
    for attempt in range(payloads.RESENDS):
        request = _request(state, spec, route, older, split)
        try:
            payloads.check_size(request, "the input of summarize", state.store.max_payload)
        except payloads.TooLarge as exc:
            state.note("error", f"cannot compact: {exc}")
            return False
        try:
            result = await workflow.execute_activity(
                SUMMARIZE,
                request,
                result_type=Summary,
                start_to_close_timeout=spec.llm_timeout,
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=SUMMARY_RETRY,
                summary=f"compaction · turn {state.turn} · {len(older)} messages",
            )
            break
        except ActivityError as err:
            if not payloads.lacked(state, err, attempt):
                raise
            await payloads.recover(state)
    state.usage = state.usage.plus(result.usage)
    summary = Message(role="user", content=result.text)
    kept = [first or messages[0], summary, *messages[split:]]
    if state.store.by_reference:
        payloads.replace_messages(state, kept, [chain.message_hash(summary)])
    else:
        state.messages = kept
    state.compactions += 1
    state.note(
        "compaction",
        f"replaced {len(older)} messages with a summary ({why})",
        {"replaced": [m.model_dump(mode="json") for m in older], "summary": result.text},
    )
    return True
