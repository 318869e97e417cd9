"""Rebuilding a conversation sent by reference, for `call_llm` and `summarize`.

The activity reads what the workflow sent by hash from the message store, verifies every hash,
writes through what came as content (so the next call can send it by hash), and expands large
tool results the model should read in full. If anything is missing it fails with
`ConversationMissing`, whose details say what to send again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from durable_agents._vocab import chain
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import ConversationRef, LLMRequest, Message, ToolSchema
from durable_agents.activities.store import MessageStore, get_store


@dataclass
class Missing:
    base: bool = False
    messages: list[str] = field(default_factory=list)
    preamble: bool = False

    def __bool__(self) -> bool:
        return self.base or bool(self.messages) or self.preamble

    def error(self) -> ApplicationError:
        parts = (["the conversation's stored prefix"] if self.base else []) + (
            [f"{len(self.messages)} message(s)"] if self.messages else []
        )
        parts += ["the system prompt and tools"] if self.preamble else []
        return ApplicationError(
            f"the message store lacks {', '.join(parts)}; the workflow sends them again",
            {"base": self.base, "messages": self.messages, "preamble": self.preamble},
            type=f.CONVERSATION_MISSING,
            non_retryable=True,
        )


def _invalid(problem: str) -> ApplicationError:
    return ApplicationError(problem, type=f.INVALID_REQUEST, non_retryable=True)


@dataclass
class Resolved:
    request: LLMRequest  # with the whole conversation as content, ready for the wire
    head: str | None  # chain head of the conversation (None if empty)
    degraded: list[str]


async def resolve(request: LLMRequest, store: MessageStore | None = None) -> Resolved:
    """The request with its conversation as content; `request` as it is if sent inline."""
    ref = request.conversation
    if ref is None:
        return Resolved(request, None, [])
    store = store or get_store()
    missing = Missing()
    system, tools = await _preamble(store, ref, request, missing)
    hashes = await store.walk(ref.base, ref.base_length) if ref.base else []
    if hashes is None:
        missing.base, hashes = True, []
    inline = {item.hash: item.message for item in ref.tail if item.message is not None}
    for h, message in inline.items():
        if chain.message_hash(message) != h:
            raise _invalid(f"message sent as content does not match its hash {h[:16]}")
    wanted = hashes + [item.hash for item in ref.tail if item.message is None]
    bodies = await store.get(wanted)
    messages: dict[str, Message] = dict(inline)
    for h in wanted:
        body = bodies.get(h)
        if body is None or chain.digest(body) != h:
            missing.messages.append(h)  # absent, or corrupt: the same remedy
            continue
        try:
            messages[h] = Message.model_validate_json(body)
        except ValidationError:
            missing.messages.append(h)
    if missing:
        raise missing.error()
    order = hashes + [item.hash for item in ref.tail]
    # Write through what came as content, and the links, so the next call sends only hashes.
    heads = chain.heads(order)
    start = len(hashes)
    await store.put_all(
        {h: chain.encode_message(m) for h, m in inline.items()},
        [(heads[i], heads[i - 1] if i else None, order[i]) for i in range(start, len(order))],
    )
    conversation, degraded = await _expand(store, [messages[h] for h in order])
    full = request.model_copy(
        update={"system": system, "tools": tools, "messages": conversation, "conversation": None}
    )
    return Resolved(full, heads[-1] if heads else None, degraded)


async def _preamble(
    store: MessageStore, ref: ConversationRef, request: LLMRequest, missing: Missing
) -> tuple[str, list[ToolSchema]]:
    if not ref.preamble:
        return request.system, request.tools
    if request.system or request.tools:
        body = chain.encode_preamble(request.system, request.tools)
        if chain.digest(body) != ref.preamble:
            raise _invalid("system prompt and tools sent as content do not match their hash")
        await store.put({ref.preamble: body})
        return request.system, request.tools
    stored = (await store.get([ref.preamble])).get(ref.preamble)
    if stored is None or chain.digest(stored) != ref.preamble:
        missing.preamble = True
        return "", []
    data = json.loads(stored)
    return data["system"], [ToolSchema.model_validate(t) for t in data["tools"]]


async def _expand(store: MessageStore, messages: list[Message]) -> tuple[list[Message], list[str]]:
    """Large tool results the model reads in full, from the store; the preview if lost."""
    wanted = [m.blob.hash for m in messages if m.blob is not None and m.blob.view == "full"]
    if not wanted:
        return messages, []
    bodies = await store.get(wanted)
    out, degraded = [], []
    for m in messages:
        if m.blob is None or m.blob.view != "full":
            out.append(m)
            continue
        body = bodies.get(m.blob.hash)
        if body is None or chain.digest(body) != m.blob.hash:
            degraded.append(
                f"the full result of {m.name} ({m.blob.size} bytes) is no longer in the message "
                "store; the model read its preview"
            )
            out.append(m)
            continue
        out.append(m.model_copy(update={"content": body.decode(), "blob": None}))
    return out, degraded


async def store_reply(head: str | None, reply: Message, store: MessageStore | None = None) -> None:
    """The model's reply, and the conversation that ends with it, for the next call."""
    store = store or get_store()
    h = chain.message_hash(reply)
    await store.put_all({h: chain.encode_message(reply)}, [(chain.link(head, h), head, h)])


async def store_message(message: Message, store: MessageStore | None = None) -> str:
    store = store or get_store()
    h = chain.message_hash(message)
    await store.put({h: chain.encode_message(message)})
    return h
