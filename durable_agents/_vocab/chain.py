"""Content addresses for a conversation, the same in the workflow and in the activities.

A message's hash is the SHA-256 of its canonical JSON (URL-safe base64). A conversation is a
chain: the head of messages m1..mn is `link(head(m1..mn-1), hash(mn))`, so one 43-character head
names the whole conversation and a model call needs only the head of what the store already holds
plus the few messages after it. Pure functions of their input: safe in workflow code and replay.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from durable_agents._vocab.schemas import BlobRef, Message, ToolResult, ToolSchema


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: bytes) -> str:
    """SHA-256, URL-safe base64 without padding (43 characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def encode_message(message: Message) -> bytes:
    return canonical(message.model_dump(mode="json"))


def message_hash(message: Message) -> str:
    return digest(encode_message(message))


def link(parent: str | None, message: str) -> str:
    """The head of a chain `parent` extended by the message with hash `message`."""
    return digest(canonical({"parent": parent, "message": message}))


def heads(hashes: list[str], known: list[str] | None = None, root: str | None = None) -> list[str]:
    """The chain head after each message, reusing the heads already computed for a prefix;
    `root` is the head of what comes before the first of `hashes` (None: nothing)."""
    out = list(known or [])
    for h in hashes[len(out) :]:
        out.append(link(out[-1] if out else root, h))
    return out


def encode_preamble(system: str, tools: list[ToolSchema]) -> bytes:
    return canonical({"system": system, "tools": [t.model_dump(mode="json") for t in tools]})


def tool_message(call_id: str, name: str, result: ToolResult) -> Message:
    """The conversation's message for a tool's result, built alike by `run_tool` (which stores
    it) and by the workflow (which appends it)."""
    if result.blob is not None:
        return Message(
            role="tool",
            tool_call_id=call_id,
            name=name,
            content=result.preview,
            blob=result.blob,
        )
    return Message(role="tool", tool_call_id=call_id, name=name, content=result_text(result.output))


def result_text(output: dict[str, Any]) -> str:
    return json.dumps(output, sort_keys=True)


def preview(text: str, blob: BlobRef, chars: int) -> str:
    shown = text[:chars]
    return (
        f"{shown}\n[… {blob.size} bytes in all; showing the first {len(shown)} characters. "
        f"The full result is stored as {blob.hash[:16]}.]"
    )
