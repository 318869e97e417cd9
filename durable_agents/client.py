"""`durable_agents.client`: runs, approvals and messages from code, typed, over a Temporal client.

    from durable_agents.client import AgentClient

    agents = await AgentClient.connect("127.0.0.1:7233", prover=my_prover)
    run = await agents.start(AgentRun(agent="onboarding", input=hire, principal="hana"))
    status = await run.status()                    # what it does or waits for
    [asked] = [a for a in status.approvals if a.state == "pending"]
    await run.decide(Decision(approve=True, approver="hana", digest=asked.digest))
    result = await run.result()

Messages from people carry a proof from the identity provider (README: "People prove who they
are"): the client asks its `prover` for one, for exactly what is sent (this approval of this run,
this verdict, this text). A prover is any `async (authorization_details) -> (person, proof)`;
agentctl's comes from `agentctl login`, a web console's from its signed-in session. Runs that
code starts act for a service principal of the directory and need no proof.

Every refusal is a `durable_agents.errors.RequestError` whose message says what to do; a
decision or message sent but not confirmed in time is `Unconfirmed` (it may still be applied).
Runs are addressed by the workflow's public names only: reading a run loads neither the agent
loop nor the model clients.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from durable_agents import _ops
from durable_agents._ops import Prover
from durable_agents._vocab.live import TEXT_TOPIC, TOPIC, LiveEvent
from durable_agents._vocab.names import ABORT_SIGNAL, RESUME_SIGNAL, RETRY_TURN_SIGNAL
from durable_agents._vocab.schemas import (
    AbortRequest,
    AgentResult,
    AgentRun,
    AgentStatus,
    Approval,
    Decision,
    MessageAck,
    OperatorRequest,
    TranscriptEntry,
)
from durable_agents.errors import RequestError

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

__all__ = ["AgentClient", "Prover", "RunHandle", "new_run_id", "start_run"]

new_run_id = _ops.new_run_id


async def start_run(
    client: Client, run: AgentRun, run_id: str | None = None, task_queue: str | None = None
) -> WorkflowHandle[Any, AgentResult]:
    """Start `run` on `client` (checked first as the workflow would check it: agent, input,
    principal, scopes, routes, size) and return Temporal's handle. `AgentRun.proof` must be set
    for a person's run (see `AgentClient.start`)."""
    return await _ops.start_run(client, run, run_id, task_queue)


async def _no_prover(details: dict[str, Any]) -> tuple[str, str]:
    raise RequestError(
        "this client has no prover: a person's message needs their proof; build the client "
        "with AgentClient(..., prover=...)"
    )


@dataclass(frozen=True)
class AgentClient:
    """The runs on one Temporal client; `prover` proves people's messages (see the module)."""

    temporal: Client
    prover: Prover = field(default=_no_prover)
    task_queue: str | None = None
    """Where `start` sends runs (None: DURABLE_AGENTS_TASK_QUEUE or durable-agents)."""

    @classmethod
    async def connect(
        cls,
        address: str | None = None,
        *,
        prover: Prover = _no_prover,
        task_queue: str | None = None,
        timeout: float | None = None,
    ) -> AgentClient:
        """Connect with TEMPORAL_* settings (envconfig), `address` over them, the project's data
        converter, and a short deadline: a wrong address is a `RequestError` in seconds."""
        return cls(await _ops.connect(address, timeout), prover, task_queue)

    async def start(
        self, run: AgentRun, *, run_id: str | None = None, scopes: list[str] | None = None
    ) -> RunHandle:
        """Start `run`. A service principal's run needs no proof; a person's is signed with the
        prover (the run then acts for the person the proof names, within the scopes granted:
        `run.scopes`, else every scope the agent's tools need)."""
        from durable_agents._vocab import proofs

        wid = run_id or new_run_id(run.agent)
        if run.proof is None and not _ops.service(run.principal):
            granted = sorted(set(scopes or run.scopes or _ops.spec(run.agent).scopes()))
            person, proof = await self.prover(proofs.start(wid, run, granted))
            run = run.model_copy(update={"principal": person, "proof": proof})
        await start_run(self.temporal, run, wid, self.task_queue)
        return self.run(wid)

    def run(self, run_id: str) -> RunHandle:
        """A run by its id (nothing is asked of the server until a method is called)."""
        return RunHandle(self, run_id)

    async def list(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        limit: int = 50,
        problems: dict[str, str] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Runs, newest first (one row per run, however often it continued as new). A run that
        cannot be shown is left out and named in `problems` (run id -> why)."""
        query = _ops.list_query(agent, status)
        return await _ops.list_runs(self.temporal, query, limit, problems)

    async def pending_approvals(
        self, approver: str | None = None, problems: dict[str, str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """What waits for a decision across runs (only what `approver` may decide, if given)."""
        return await _ops.pending(self.temporal, approver, problems)


@dataclass(frozen=True)
class RunHandle:
    """One run (the whole chain, however often it continued as new)."""

    agents: AgentClient
    id: str

    @property
    def temporal(self) -> WorkflowHandle[Any, AgentResult]:
        """Temporal's handle on the run, for what this API does not cover."""
        return self.agents.temporal.get_workflow_handle(self.id, result_type=AgentResult)

    async def status(self) -> AgentStatus:
        return await _ops.status(self.agents.temporal, self.id)

    async def transcript(self) -> list[TranscriptEntry]:
        return await _ops.transcript(self.agents.temporal, self.id)

    async def approvals(self, *, pending: bool = False) -> list[Approval]:
        """The run's approvals (decided ones too, unless `pending`)."""
        found = (await self.status()).approvals
        return [a for a in found if a.state == "pending"] if pending else found

    async def decide(self, decision: Decision) -> Approval:
        """Decide an approval, proven by the prover; an exact repeat of a recorded decision
        returns that decision (also once the run has finished)."""
        return await _ops.decide(self.agents.temporal, self.id, decision, self.agents.prover)

    async def message(self, text: str) -> MessageAck:
        """Answer the agent's question, or give it a follow-up for its next turn."""
        return await _ops.send_message(self.agents.temporal, self.id, text, self.agents.prover)

    async def resume(self, reason: str = "") -> None:
        """A run that needs attention retries the step that stopped it."""
        request = _ops.built(OperatorRequest, reason=reason)
        await _ops.operate(self.agents.temporal, self.id, RESUME_SIGNAL, request, self._prover)

    async def retry_turn(self, reason: str = "") -> None:
        """A run that needs attention hands the problem to the model as the step's result."""
        request = _ops.built(OperatorRequest, reason=reason)
        await _ops.operate(self.agents.temporal, self.id, RETRY_TURN_SIGNAL, request, self._prover)

    async def abort(self, reason: str) -> None:
        """End a run that needs attention as `aborted` (a saga undoes its steps first)."""
        if not reason.strip():
            raise RequestError("an abort must say why the run is aborted")
        request = _ops.built(AbortRequest, reason=reason)
        await _ops.operate(self.agents.temporal, self.id, ABORT_SIGNAL, request, self._prover)

    async def send_event(self, name: str, data: dict[str, Any] | None = None) -> None:
        """An outside fact the run may wait for (`wait_for_event`), e.g. clearance_granted."""
        await _ops.send_event(self.agents.temporal, self.id, name, data or {})

    async def watch(self, from_offset: int = 0) -> AsyncIterator[tuple[int, LiveEvent]]:
        """The run's steps as it takes them, and its model's text as it is written (kind
        `text`, each piece naming its attempt: a new attempt means the earlier one's text is
        void) (its live stream, `durable_agents._vocab.live`),
        each with its offset, from `from_offset` (resume after the last offset you had: no gap,
        no repeat), following the run across continue-as-new; ends after the run's end. A run
        keeps its newest 500 steps (and carries 10 to its next run): an older offset starts at
        the oldest kept."""
        from temporalio.contrib.workflow_streams import WorkflowStreamClient

        await _ops.describe(self.agents.temporal, self.id)  # no such run: a RequestError
        stream = WorkflowStreamClient.create(self.agents.temporal, self.id)
        topics = [TOPIC, TEXT_TOPIC]
        async for item in stream.subscribe(topics, from_offset, result_type=LiveEvent):
            yield item.offset, item.data
            if item.data.ended:
                return

    async def result(self, *, wait: bool = True) -> AgentResult:
        """The outcome; `wait=False` refuses while the run is still going."""
        return await _ops.result(self.agents.temporal, self.id, wait)

    @property
    def _prover(self) -> Prover:
        return self.agents.prover
