"""Reading what people and ops tools send into a run, without ever being broken by it.

Every signal and update handler of the agent workflow takes its payload raw (`RawValue`) and
reads it here: a payload that is not JSON, is too large, has unknown fields, leaves out a field
that decides, or names someone the directory does not know becomes `MessageRefused` with one
sentence saying what was wrong and what to send instead. The workflow refuses an update with it
(the sender hears it, nothing reaches history) and records a refused signal in the run's state
(`status`, the transcript, a log line and a metric). Nothing here can fail a workflow task.

Who sends a person's message is not read from it: it is the subject of its proof
(`workflows.proofs`); a name it claims is kept for the record of a refusal only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from durable_agents._spec import problems
from durable_agents._vocab.schemas import MAX_INBOUND_BYTES
from durable_agents.errors import UnknownPerson
from durable_agents.workflows import catalog

M = TypeVar("M", bound=BaseModel)
# The `type` of the ApplicationError an update is refused with.
MESSAGE_REFUSED = "MessageRefused"
DECISION_REFUSED = "DecisionRefused"


# A handler's payload when the sender sent none.
NOTHING = RawValue(Payload())
# Characters of a refusal's reason kept in the run (it may quote the sender's field names).
MAX_REFUSAL = 500


class MessageRefused(ValueError):
    """A message the run will not take; the text says why and what to send instead."""

    kind = MESSAGE_REFUSED

    def __init__(self, reason: str, sender: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason if len(reason) <= MAX_REFUSAL else reason[:MAX_REFUSAL] + " …"
        self.sender = sender

    def as_update_error(self) -> ApplicationError:
        """Non-retryable: the same message would be refused again."""
        return ApplicationError(self.reason, type=self.kind, non_retryable=True)


@contextmanager
def to_sender() -> Iterator[None]:
    """In an update's validator or handler: a refusal goes back to the sender, as an error."""
    try:
        yield
    except MessageRefused as exc:
        raise exc.as_update_error() from None


# What each message looks like, as the refusals quote it and the README documents it.
# A person's message carries a proof from their sign-in (README: "People prove who they are").
_PROOF = '"proof": "<JWT from the identity provider>"'
EXAMPLES: dict[str, str] = {
    "event": '{"name": "clearance_granted", "payload": {"granted_by": "security"}}',
    "decide": '{"approve": true, "approval_id": "apr-1", "digest": "3f9c2a7e1b0d4c85", '
    f'"reason": "ok", {_PROOF}}}',
    "approve": '{"approve": true, "approval_id": "apr-1", "digest": "3f9c2a7e1b0d4c85", '
    f'"reason": "ok", {_PROOF}}}',
    "reject": '{"approve": false, "approval_id": "apr-1", "digest": "3f9c2a7e1b0d4c85", '
    f'"reason": "no", {_PROOF}}}',
    "message": f'{{"text": "it arrived broken", {_PROOF}}}',
    "resume": f'{{"reason": "key rotated", {_PROOF}}}',
    "retry_turn": f'{{"reason": "let the model try again", {_PROOF}}}',
    "abort": f'{{"reason": "wrong hire", {_PROOF}}}',
    "move": '{"reason": "v2 promoted"}',
}
_DESCRIPTIONS: dict[str, str] = {
    "event": "An outside fact the agent may wait for (wait_for_event); kept until asked for.",
    "decide": (
        "Approve or reject a pending approval; refused before it reaches history if the "
        "approver may not decide, the id is unknown or decided, or the digest is stale."
    ),
    "approve": "Approve a pending approval (for tools that can only signal); same checks.",
    "reject": "Reject a pending approval; the agent is told the reason. Same checks.",
    "message": "The principal's answer to the agent's question, or a follow-up for its next turn.",
    "resume": "A run that needs attention retries the step that stopped it.",
    "retry_turn": "A run that needs attention hands the problem to the model.",
    "abort": "A run that needs attention ends as aborted (a saga undoes its steps first).",
    "move": (
        "Wake a waiting run so that, if its deployment has a new version for it, it moves "
        "there now (continue-as-new at its safe point, still waiting); otherwise nothing "
        "(`agentctl deploy promote` sends it)."
    ),
}


def describe(handler: str) -> str:
    """The handler's description for `temporal workflow metadata`: what it does and its JSON."""
    return f"{_DESCRIPTIONS[handler]} Payload: {EXAMPLES[handler]}"


def unknown(name: str, kind: str) -> str:
    updates = kind == "update"
    names = ", ".join(sorted(n for n in EXAMPLES if (n in ("decide", "message")) == updates))
    return f"this run takes no {kind} named {name[:64]!r}; its {kind}s: {names}"


def _data(raw: RawValue | None, example: str) -> bytes:
    """The payload's JSON bytes, or MessageRefused naming what arrived instead."""
    if raw is None or not raw.payload.metadata:
        raise MessageRefused(f"no payload: send one JSON object, e.g. {example}")
    encoding = raw.payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding != "json/plain":
        raise MessageRefused(
            f"the payload is {encoding or 'of no encoding'}, not JSON (json/plain): "
            f"send one JSON object, e.g. {example}"
        )
    size = len(raw.payload.data)
    if size > MAX_INBOUND_BYTES:
        raise MessageRefused(
            f"the payload is {size:,} bytes, over the limit of {MAX_INBOUND_BYTES:,}"
        )
    return raw.payload.data


def _claimed(data: bytes, field: str) -> str:
    """Who the payload says it is from, for the record; never trusted for anything else."""
    try:
        value = json.loads(data).get(field)
    except (ValueError, AttributeError):
        return "unknown"
    return value[:64] if isinstance(value, str) and value.strip() else "unknown"


def read(raw: RawValue | None, model: type[M], example: str, sender_field: str = "") -> M:
    """The payload as `model` (strictly: see `_vocab.schemas.Inbound`), or MessageRefused."""
    data = _data(raw, example)
    sender = _claimed(data, sender_field) if sender_field else "unknown"
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise MessageRefused(f"{problems(exc)}; send e.g. {example}", sender) from None


def someone(name: str, role: str) -> str:
    """`name` in normal form if the directory knows it, else MessageRefused."""
    try:
        return catalog.current().directory.person(name)
    except UnknownPerson as exc:
        raise MessageRefused(f"{role}: {exc}", name[:64]) from None
