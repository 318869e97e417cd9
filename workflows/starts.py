"""Who a run acts for: the person whose proof started it, or a service principal.

A run people start carries the starter's proof (`AgentRun.proof`, README: "People prove who
they are"), bound to this workflow id, the agent, the input, the task and every setting that
shapes the run (`durable_agents._vocab.proofs.start`), and the scopes it is granted: the run
acts for the proof's subject, and the identity provider, which recorded the grant when it
issued the proof, gives the agent tokens for that person only within it. A run that code
started (a schedule, a script) carries no proof and acts for a service principal of the
directory (`services`), never for a person.

Only Temporal says what a run descends from: a run that continues as new is its chain's own
(`continued_run_id`), and keeps who started it in its carried state; a child run (a sub-agent,
or an agent a user's workflow runs) acts for a person only with the root run's start proof,
whose run is the child's ancestor by workflow id (`<root>--…`), checked as evidence (it may
have expired long ago), within the scopes it granted; otherwise for a service principal. A
client cannot start a run with a carried state or as anyone's child.

Runs started before this check (`workflow.patched(PATCH)` false on replay) are left as they
were started.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._vocab import proofs as details_of
    from durable_agents._vocab.schemas import AgentRun, Proven
    from durable_agents.errors import UnknownPerson
    from durable_agents.workflows import catalog, proofs
    from durable_agents.workflows.inbound import MessageRefused
    from durable_agents.workflows.state import RunState

PATCH = "start-proofs-v1"


def applies(run: AgentRun) -> bool:
    """Whether this run must show who it acts for: every run but its chain's own
    continuation."""
    if workflow.info().continued_run_id is not None:
        return False
    return workflow.patched(PATCH)


async def prove(run: AgentRun, state: RunState) -> tuple[AgentRun, str | None]:
    """The run acting for the proven starter, or what is wrong (the run then fails as
    InvalidRun, having done nothing)."""
    directory = catalog.current().directory
    if run.carried is not None:
        return run, "carried: only the run itself hands on its state, when it continues as new"
    if run.proof is None:
        if run.principal in directory.services:
            return run, None
        services = ", ".join(sorted(directory.services)) or "none in the directory"
        return run, (
            f"principal: {run.principal!r} is a person, and a run acts for a person only when "
            "started with their proof (`agentctl login`, then `agentctl run`); code starts runs "
            f"for a service principal ({services})"
        )
    parent = workflow.info().parent
    try:
        if parent is None:
            proven, scopes = await _started(run, state)
        else:
            proven, scopes = await _descended(run, state)
        subject = directory.person(proven.subject)
    except MessageRefused as exc:
        return run, f"the start proof: {exc.reason}"
    except UnknownPerson as exc:
        return run, f"the start proof's subject: {exc}"
    if subject != proven.subject:
        return run, f"the start proof's subject {proven.subject!r} is not a name of the directory"
    if "principal" in run.model_fields_set and run.principal != subject:
        return run, (
            f"principal: {run.principal!r} is not who signed the start proof ({subject!r}): "
            "leave it out, or sign in as them"
        )
    state.started_by = proofs.by(proven) | {"proof": run.proof}
    state.note("note", f"acts for {subject} (proof {proven.proof_id} from {proven.issuer})", {})
    return run.model_copy(update={"principal": subject, "scopes": scopes}), None


async def _started(run: AgentRun, state: RunState) -> tuple[Proven, list[str]]:
    """A run a person started: their proof for exactly this run, used once."""
    spec = catalog.spec(run.agent)
    scopes = list(spec.scopes()) if run.scopes is None else run.scopes
    want = details_of.start(workflow.info().workflow_id, run, scopes)
    if run.granted_to is not None:
        raise MessageRefused("granted_to: only a sub-agent acts under another agent's grant")
    proven = await proofs.verified(run.proof, want, state)
    proofs.take(state, proven)
    return proven, scopes


async def _descended(run: AgentRun, state: RunState) -> tuple[Proven, list[str]]:
    """A child run: the root run's start proof (as evidence), the root an ancestor of this
    run by id, the grant the root's agent's, the scopes within it."""
    claimed = proofs.claimed_details(run.proof)
    root = str(claimed.get("run", ""))
    if not root or not workflow.info().workflow_id.startswith(f"{root}--"):
        raise MessageRefused(f"the proof is for run {root[:80]!r}, not an ancestor of this one")
    if claimed.get("action") != "start" or claimed.get("agent") != run.granted_to:
        raise MessageRefused("a child acts under its root run's start, for the root's agent")
    proven = await proofs.verified(run.proof, claimed, state, as_evidence=True)
    granted = proven.details.get("scopes")
    scopes = list(run.scopes or [])
    if not isinstance(granted, list) or not set(scopes) <= set(granted):
        raise MessageRefused(f"scopes {scopes} are beyond the root run's grant {granted}")
    return proven, scopes
