"""What operators do to runs: start, signal, inspect. The CLI is a thin layer over these."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, get_args

from pydantic import ValidationError
from temporalio.api.enums.v1 import TaskQueueType, WorkflowExecutionStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import (
    CancelledError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as WorkflowTimeout
from temporalio.service import RPCError, RPCStatusCode

from agents import UnknownAgent, get_agent
from agents.routes import InvalidRoute, parse_route
from agents.spec import problems
from agents.toolbox import TOOL_CONTRACTS
from workers.client import TASK_QUEUE, ServerUnreachable, connect_config
from workers.client import connect as _connect
from workflows.agent import AgentWorkflow
from workflows.failures import PAYLOAD_TOO_LARGE
from workflows.history import DEFAULT_MAX_PAYLOAD
from workflows.models import (
    AgentResult,
    AgentRun,
    AgentStatus,
    AgentStatusValue,
    EventSignal,
    TranscriptEntry,
)
from workflows.search import AGENT_NAME, AGENT_STATUS, PRINCIPAL

T = TypeVar("T")
UI_URL = os.environ.get("DURABLE_AGENTS_UI_URL", "http://127.0.0.1:8233")
# An operator waits this long for a server that accepts connections but does not answer.
CONNECT_TIMEOUT = float(os.environ.get("DURABLE_AGENTS_CONNECT_TIMEOUT", "5"))
# Queries need a worker to answer; without one the server would hold the call for a long time.
QUERY_TIMEOUT = timedelta(seconds=float(os.environ.get("DURABLE_AGENTS_QUERY_TIMEOUT", "10")))
NO_WORKER_QUERY_TIMEOUT = timedelta(seconds=3)
STATUSES: tuple[str, ...] = get_args(AgentStatusValue)
START_HINT = (
    "Start one with `agentctl server` (or `make demo`), or set TEMPORAL_ADDRESS "
    "(or --address) to a running server."
)


class OpError(Exception):
    """A request an operator made that cannot be carried out; the message says what to do."""


async def connect(address: str | None = None, timeout: float | None = None) -> Client:
    """The operator's client: TEMPORAL_* settings (envconfig), `address` over them, and a short
    deadline, so a wrong address fails in seconds with what was tried and what to do."""
    try:
        target = connect_config(address)["target_host"]
    except RuntimeError as exc:  # envconfig: unknown TEMPORAL_PROFILE, unreadable config file
        raise OpError(f"Temporal client configuration is invalid: {exc}") from None
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        return await asyncio.wait_for(_connect(address), timeout)
    except TimeoutError:
        raise ServerUnreachable(
            f"cannot reach the Temporal server at {target} (no answer within {timeout:g} s). "
            + START_HINT
        ) from None


def parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OpError(
            f"{what} is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise OpError(f"{what} must be a JSON object, got {text!r}")
    return value


def validate_run(run: AgentRun) -> None:
    """Refuse a run the workflow would refuse, before anything is started."""
    try:
        spec = get_agent(run.agent)
    except UnknownAgent as exc:
        raise OpError(str(exc)) from None
    try:
        spec.input_model.model_validate(run.input)
    except ValidationError as exc:
        raise OpError(f"input does not fit agent {run.agent!r}: {problems(exc)}") from None
    for route in run.model_route or []:
        try:
            parse_route(route)
        except InvalidRoute as exc:
            raise OpError(str(exc)) from None
    known = {s for t in TOOL_CONTRACTS.values() for s in t.required_scopes}
    unknown = sorted(set(run.scopes or []) - known)
    if unknown:
        raise OpError(
            f"unknown scope {', '.join(map(repr, unknown))}; scopes: {', '.join(sorted(known))}"
        )


def summary(run: AgentRun) -> str:
    who = run.input.get("full_name") or run.input.get("employee_id") or ""
    return f"{run.agent} agent{' for ' + str(who) if who else ''} · on behalf of {run.principal}"


async def start_run(
    client: Client, run: AgentRun, workflow_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, AgentResult]:
    validate_run(run)
    _check_size(client, run)
    wid = workflow_id or f"{run.agent}-{uuid.uuid4().hex[:10]}"
    details = json.dumps(run.input, sort_keys=True)
    try:
        return await client.start_workflow(
            AgentWorkflow.run,
            run,
            id=wid,
            task_queue=task_queue,
            static_summary=summary(run),
            static_details=f"Input: {details if len(details) <= 2000 else details[:2000] + ' …'}",
            search_attributes=_initial_attributes(run),
            # Idempotency keys are `<workflow id>/<tool call id>`: an id is never used twice.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise OpError(
            f"a run with id {wid!r} already exists; pick another --id "
            f"or look at it with `agentctl status {wid}`"
        ) from None


def _check_size(client: Client, run: AgentRun) -> None:
    """Refuse an input the run could not carry, before anything starts."""
    size = client.data_converter.payload_converter.to_payloads([run])[0].ByteSize()
    limit = run.max_payload_bytes or DEFAULT_MAX_PAYLOAD
    if size > limit:
        raise OpError(
            f"{PAYLOAD_TOO_LARGE}: the run's input is {size:,} bytes, over the limit of "
            f"{limit:,}; pass large documents by reference (an id or URL a tool can read)"
        )


async def pollers(client: Client, task_queue: str) -> int | None:
    """How many workers poll `task_queue` for workflow tasks; None when the server won't say."""
    try:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=3),
        )
    except RPCError:
        return None
    return len(resp.pollers)


def _initial_attributes(run: AgentRun) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(AGENT_NAME, run.agent),
            SearchAttributePair(PRINCIPAL, run.principal),
            SearchAttributePair(AGENT_STATUS, "running"),
        ]
    )


async def describe(client: Client, run_id: str) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "namespace" in exc.message.lower():
            raise OpError(f"{exc.message} (set TEMPORAL_NAMESPACE to an existing one)") from None
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise OpError(f"no run {run_id!r}: list runs with `agentctl list`") from None
        raise


async def require_open(client: Client, run_id: str) -> None:
    desc = await describe(client, run_id)
    if desc.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        state = desc.status.name.lower() if desc.status else "closed"
        raise OpError(f"run {run_id!r} has finished ({state}); it takes no more signals")


async def send_event(client: Client, run_id: str, name: str, payload: dict[str, Any]) -> None:
    await require_open(client, run_id)
    await client.get_workflow_handle(run_id).signal(
        AgentWorkflow.on_event, EventSignal(name=name, payload=payload)
    )


async def _query(client: Client, run_id: str, ask: Callable[[timedelta], Awaitable[T]]) -> T:
    """Answer a query, or say why not: queries are answered by a worker, not by the server.

    With no worker seen on the run's task queue the query gets a short deadline (the server's
    poller list can miss workers on other partitions, so it still gets its chance)."""
    desc = await describe(client, run_id)
    queue = desc.task_queue
    seen = await pollers(client, queue)
    deadline = NO_WORKER_QUERY_TIMEOUT if seen == 0 else QUERY_TIMEOUT
    try:
        return await ask(deadline)
    except WorkflowQueryFailedError as exc:
        raise OpError(f"run {run_id!r} could not answer: {exc.message}") from None
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise
        why = (
            f"no worker polls its task queue {queue!r}"
            if seen == 0
            else f"no worker on its task queue {queue!r} answered"
        )
        raise OpError(
            f"run {run_id!r} did not answer within {deadline.total_seconds():g} s: {why}; "
            f"start one with `agentctl worker --task-queue {queue}`"
        ) from None


async def status(client: Client, run_id: str) -> AgentStatus:
    handle = client.get_workflow_handle(run_id)
    return await _query(client, run_id, lambda t: handle.query(AgentWorkflow.status, rpc_timeout=t))


async def transcript(client: Client, run_id: str) -> list[TranscriptEntry]:
    handle = client.get_workflow_handle(run_id)
    return await _query(
        client, run_id, lambda t: handle.query(AgentWorkflow.transcript, rpc_timeout=t)
    )


async def result(client: Client, run_id: str, wait: bool) -> AgentResult:
    desc = await describe(client, run_id)
    running = desc.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    if running and not wait:
        raise OpError(
            f"run {run_id!r} is still running; `agentctl status {run_id}` says why, "
            "or wait for it with --wait"
        )
    handle: WorkflowHandle[Any, AgentResult] = client.get_workflow_handle(
        run_id, result_type=AgentResult
    )
    return await outcome(handle)


async def outcome(handle: WorkflowHandle[Any, AgentResult]) -> AgentResult:
    """The run's result; a run that ended without one (failed, terminated, cancelled, timed
    out) is an error naming the cause."""
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        kind = {TerminatedError: "terminated", CancelledError: "cancelled"}.get(type(cause))
        if isinstance(cause, WorkflowTimeout):
            kind = "timed out"
        detail = str(cause) or type(cause).__name__
        why = f"{kind} ({detail})" if kind else f"failed: {detail}"
        raise OpError(f"run {handle.id!r} ended without a result: {why}") from None


# A run that continued as new is one run: show only the latest of its chain.
ONE_ROW_PER_RUN = "ExecutionStatus != 'ContinuedAsNew'"


def list_query(agent: str | None = None, status: str | None = None) -> str:
    """The visibility query for `agentctl list`; filter values are checked, never spliced raw."""
    clauses = ["WorkflowType = 'AgentWorkflow'", ONE_ROW_PER_RUN]
    if agent is not None:
        if not _NAME.fullmatch(agent):
            raise OpError(
                f"--agent {agent!r} is not an agent name (letters, digits, '_', '-', '.' only)"
            )
        clauses.append(f"AgentName = '{agent}'")
    if status is not None:
        if status not in STATUSES:
            raise OpError(f"--status {status!r} is not a run status; one of: {', '.join(STATUSES)}")
        clauses.append(f"AgentStatus = '{status}'")
    return " AND ".join(clauses)


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


async def list_runs(client: Client, query: str, limit: int) -> list[dict[str, Any]]:
    rows = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "run": wf.id,
                "agent": attrs.get(AGENT_NAME),
                "status": attrs.get(AGENT_STATUS),
                "principal": attrs.get(PRINCIPAL),
                "started": wf.start_time.isoformat(timespec="seconds"),
                "temporal": wf.status.name.lower() if wf.status else "",
            }
        )
    return rows


def ui_link(workflow_id: str, run_id: str | None = None, namespace: str = "default") -> str:
    tail = f"/{run_id}" if run_id else ""
    return f"{UI_URL}/namespaces/{namespace}/workflows/{workflow_id}{tail}/history"
