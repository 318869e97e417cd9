"""People's proofs in the workflow: a message is taken from the person who signed in, for
exactly what the message says, once.

A proof is a JWT the identity provider signed (README: "Proofs"). Its `authorization_details`
name the run and what the message decides (`durable_agents._vocab.proofs` builds the entry
from the message itself), so
a proof for approval apr-1 of run A cannot decide run B, another approval, the other verdict,
other arguments or carry another reason. An update's validator reads the proof's claims
without the signature (`preview`: pure, no keys, no clock) to refuse what cannot be right
before it reaches history; the handler then has the `verify_proof` local activity check the
signature and expiry against the provider's keys and the worker's clock (`verified`), checks
the binding again on what it verified, and takes the proof once (`take`): each proof is good
for one message, until it expires.

Runs started before proofs (`workflow.patched(PATCH)` false on replay) read their recorded
messages as they did; every message that reaches a run live needs a proof.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from durable_agents._vocab.names import PROOF_REFUSED, RECORD_AUDIT, VERIFY_PROOF
    from durable_agents._vocab.schemas import ProofCheck, Proven, entry_for
    from durable_agents.workflows.inbound import MessageRefused
    from durable_agents.workflows.state import RunState

PATCH = "person-proofs-v1"
HOW = (
    "sign in with `agentctl login` and send it with agentctl, which asks the identity provider "
    "for a proof (an ops tool: README, 'Proofs for ops tools')"
)
NO_PROOF = f"the message carries no proof of who sends it: {HOW}"
USED = f"this proof was already used: each proof is good for one message; {HOW}"


class ProofRefused(MessageRefused):
    """A message whose proof is missing, invalid, or for something else."""

    kind = PROOF_REFUSED


def _unverified(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, signature unchecked (the handler checks it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ProofRefused(f"the proof is not a signed token (a JWT): {exc}; {HOW}") from None
    if not isinstance(claims, dict):
        raise ProofRefused(f"the proof's payload is not a JSON object; {HOW}")
    return claims


_MISSING = object()


def _json(value: Any) -> str:
    return "<missing>" if value is _MISSING else json.dumps(value, sort_keys=True)


def bound(details: Any, want: dict[str, Any]) -> None:
    """ProofRefused unless the proof's details are exactly the message's."""
    if not isinstance(details, dict):
        raise ProofRefused(f"the proof names no message (authorization_details); {HOW}")
    for key in sorted(set(want) | set(details)):
        # As JSON: `1` is not `true`, `"1"` is not `1`, a missing key is not `null`.
        if _json(details.get(key, _MISSING)) != _json(want.get(key, _MISSING)):
            what = "run" if key == "run" else key
            raise ProofRefused(
                f"the proof is for another message ({what}: {str(details.get(key))[:80]!r}, "
                f"this message: {str(want.get(key))[:80]!r}): get a proof for this one"
            )


def preview(token: str | None, want: dict[str, Any], state: RunState) -> str:
    """The subject a proof claims, if nothing visible without its keys is wrong (in a
    validator: no history, no activity)."""
    if not token:
        raise ProofRefused(NO_PROOF)
    claims = _unverified(token)
    details = claims.get("authorization_details")
    bound(details[0] if isinstance(details, list) and len(details) == 1 else None, want)
    # Its expiry is the worker's to judge (`verify_proof`), by the wall clock: a run's own
    # clock is its history's, which a time-skipping test server runs ahead.
    if str(claims.get("jti", "")) in state.proofs_used:
        raise ProofRefused(
            f"this proof was already used: each proof is good for one message; {HOW}"
        )
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ProofRefused(f"the proof names nobody (sub); {HOW}")
    return subject


async def verified(
    token: str | None, want: dict[str, Any], state: RunState, as_evidence: bool = False
) -> Proven:
    """The proof, its signature checked by the worker (a local activity, recorded) and bound
    to this message; ProofRefused otherwise. `as_evidence`: valid when it was issued."""
    preview(token, want, state)
    assert token is not None
    try:
        proven = await workflow.execute_local_activity(
            VERIFY_PROOF,
            ProofCheck(token=token, as_evidence=as_evidence),
            result_type=Proven,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=[PROOF_REFUSED]),
            summary="verify the sender's proof",
        )
    except FailureError as exc:
        # A local activity's failure may arrive wrapped (ActivityError) or as it was raised;
        # either way it is a refusal here, never an error that would fail the run's task.
        cause = exc.cause if isinstance(exc, ActivityError) else exc
        why = cause.message if isinstance(cause, FailureError) else str(exc)
        raise ProofRefused(f"{why[:300]}; {HOW}") from None
    bound(proven.details, want)
    if proven.proof_id in state.proofs_used:
        raise ProofRefused(
            f"this proof was already used: each proof is good for one message; {HOW}"
        )
    return proven


def proven_messages(state: RunState) -> bool:
    """Whether this message is read the way of proofs: every message since proofs is; one a
    run recorded before them is read as it was (its history replays). One patch marker per
    message: the SDK remembers a patch's first answer for the whole run, so a run that took
    messages before proofs would otherwise read every later one the old way too."""
    state.messages_taken += 1
    return workflow.patched(f"{PATCH}/{state.messages_taken}")


# How long a used proof is remembered past its expiry: the worker's check allows this much
# clock skew (activities/proofs.py LEEWAY_S), so it must not come back within it.
REMEMBERED_PAST_EXPIRY = timedelta(minutes=2)


def take(state: RunState, proven: Proven) -> None:
    """The proof is used up; ones long expired are forgotten (they cannot come back)."""
    now = workflow.now()
    state.proofs_used = {
        k: v for k, v in state.proofs_used.items() if v + REMEMBERED_PAST_EXPIRY > now
    }
    state.proofs_used[proven.proof_id] = proven.expires_at


def claimed_details(token: str | None) -> dict[str, Any]:
    """The details a proof claims, signature unchecked ({} when there is nothing to read)."""
    if not token:
        return {}
    try:
        details = _unverified(token).get("authorization_details")
    except ProofRefused:
        return {}
    return (
        details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    )


async def audit(state: RunState, action: str, by: dict[str, str], details: dict[str, Any]) -> None:
    """Append a person's proven action (a start, an operator's resume, retry or abort) to the
    audit log: who (`by`: subject, issuer, proof_id), as the identity provider proved it."""
    who = state.identity
    if who is None:  # refused before the run had an identity: nothing happened to record
        return
    await workflow.execute_local_activity(
        RECORD_AUDIT,
        entry_for(
            who,
            f"{who.workflow_id}/{action}/{by['proof_id']}",
            "start" if action == "start" else "operator",
            approver=by["subject"],
            outcome=action,
            details=details | by,
        ),
        start_to_close_timeout=timedelta(seconds=10),
        summary=f"audit {action} by {by['subject']}",
    )


def by(proven: Proven) -> dict[str, str]:
    """Who a proof proved, as the audit and the run's state keep it."""
    return {"subject": proven.subject, "issuer": proven.issuer, "proof_id": proven.proof_id}
