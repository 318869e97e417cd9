"""Who a run acts for: the person whose proof started it, or a service principal.

A run people start carries the starter's proof (`AgentRun.proof`, README: "People prove who
they are"), bound to this workflow id, the agent, the input (its SHA-256) and the scopes it is
granted: the run acts for the proof's subject, and the identity provider, which recorded the
grant when it issued the proof, gives the agent tokens for that person only within it. A run
that code started (a schedule, a script, a user's workflow) carries no proof and acts for a
service principal of the directory (`services`), never for a person. Sub-agents act for their
parent's principal, under their parent's grant: nothing to prove here.

Runs started before this check (`workflow.patched(PATCH)` false on replay) are left as they
were started.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._directory import UnknownPerson
    from durable_agents._vocab import proofs as details_of
    from durable_agents._vocab.models import AgentRun
    from workflows import catalog, proofs
    from workflows.inbound import MessageRefused
    from workflows.state import RunState

PATCH = "start-proofs-v1"


def applies(run: AgentRun) -> bool:
    """Whether this run must show who started it: the first run of a chain that no workflow
    started (sub-agents and users' workflows start theirs as children)."""
    if run.carried is not None or workflow.info().parent is not None:
        return False
    return workflow.patched(PATCH)


async def prove(run: AgentRun, state: RunState) -> tuple[AgentRun, str | None]:
    """The run acting for the proven starter, or what is wrong (the run then fails as
    InvalidRun, having done nothing)."""
    directory = catalog.current().directory
    if run.proof is None:
        if run.principal in directory.services:
            return run, None
        services = ", ".join(sorted(directory.services)) or "none in the directory"
        return run, (
            f"principal: {run.principal!r} is a person, and a run acts for a person only when "
            "started with their proof (`agentctl login`, then `agentctl run`); code starts runs "
            f"for a service principal ({services})"
        )
    spec = catalog.spec(run.agent)
    scopes = list(spec.scopes()) if run.scopes is None else run.scopes
    want = details_of.start(workflow.info().workflow_id, run.agent, run.input, scopes)
    try:
        proven = await proofs.verified(run.proof, want, state)
        subject = directory.person(proven.subject)
    except MessageRefused as exc:
        return run, f"the start proof: {exc.reason}"
    except UnknownPerson as exc:
        return run, f"the start proof's subject: {exc}"
    if "principal" in run.model_fields_set and run.principal != subject:
        return run, (
            f"principal: {run.principal!r} is not who signed the start proof ({subject!r}): "
            "leave it out, or sign in as them"
        )
    proofs.take(state, proven)
    state.started_by = proofs.by(proven) | {"subject": subject, "proof": run.proof}
    state.note("note", f"started by {subject} (proof {proven.proof_id} from {proven.issuer})", {})
    return run.model_copy(update={"principal": subject, "scopes": scopes}), None
