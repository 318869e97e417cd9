"""What a person's proof says: the `authorization_details` entry (RFC 9396) that binds it to
one message. The workflow checks a proof against these; clients ask the identity provider for
a proof with the same entry. One definition, so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_agents._vocab.schemas import AgentRun

DETAILS_TYPE = "durable_agents"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expected(run: str, action: str, **fields: Any) -> dict[str, Any]:
    """The entry for `action` on workflow `run`; fields that are None are left out."""
    return {"type": DETAILS_TYPE, "run": run, "action": action} | {
        k: v for k, v in fields.items() if v is not None
    }


def decision(
    run: str,
    approval_id: str,
    approve: bool,
    digest: str,
    reason: str = "",
    edited_digest: str | None = None,
) -> dict[str, Any]:
    """A decision on one approval, for the arguments with `digest`, with this reason; an
    approval with edits also names the edited arguments' digest."""
    return expected(
        run,
        "decide",
        approval_id=approval_id,
        approve=approve,
        digest=digest,
        reason_sha256=sha256(reason) if reason else None,
        edited_digest=edited_digest,
    )


def arguments_digest(arguments: dict[str, Any]) -> str:
    """The digest an approver reads and quotes: SHA-256 of the arguments as canonical JSON
    (sorted keys, no spaces), its first 16 hex characters."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def message(run: str, text: str) -> dict[str, Any]:
    return expected(run, "message", text_sha256=sha256(text))


def operator(run: str, action: str, reason: str = "") -> dict[str, Any]:
    """`resume`, `retry_turn` or `abort`, with this reason."""
    return expected(run, action, reason_sha256=sha256(reason) if reason else None)


def input_digest(data: dict[str, Any]) -> str:
    """The SHA-256 of a run's input as canonical JSON (sorted keys, no spaces)."""
    return sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


# What shapes a run besides its agent, input and scopes: a start proof binds these too, so a
# copy of it cannot start the same run with another task, route or budget.
SHAPING = (
    "task",
    "model_route",
    "max_turns",
    "llm_attempts",
    "budget",
    "compact_at_tokens",
    "continue_after_bytes",
    "max_payload_bytes",
    "conversation",
)


def start(run_id: str, run: AgentRun, scopes: list[str]) -> dict[str, Any]:
    """Starting workflow `run_id` as `run` describes it, granting its agent these scopes."""
    shaping = run.model_dump(mode="json", include=set(SHAPING))
    return expected(
        run_id,
        "start",
        agent=run.agent,
        input_sha256=input_digest(run.input),
        settings_sha256=input_digest(shaping),
        scopes=sorted(set(scopes)),
    )
