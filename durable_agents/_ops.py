"""What people and code do to runs: start, signal, decide, inspect (`durable_agents.client` is
the public face of these; agentctl and the benches use that).

Runs are addressed by the workflow's public names (`AgentWorkflow`, the `status` query, the
`decide` update, …: the constants below), never through the workflow class, so inspecting a run
loads neither the agent loop nor the model clients: `agentctl status` starts in a fraction of a
second. What a command needs beyond the Temporal client is imported where it is used.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, get_args

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

from durable_agents._vocab.names import (
    ABORT_SIGNAL,
    DECIDE_UPDATE,
    EVENT_SIGNAL,
    MESSAGE_UPDATE,
    RESUME_SIGNAL,
    RETRY_TURN_SIGNAL,
    STATUS_QUERY,
    TRANSCRIPT_QUERY,
    WORKFLOW,
)
from durable_agents._vocab.schemas import (
    AgentResult,
    AgentRun,
    AgentStatus,
    AgentStatusValue,
    EventSignal,
    TranscriptEntry,
)
from durable_agents.errors import RequestError, Unconfirmed
from durable_agents.workflows.search import AGENT_NAME, AGENT_STATUS, PRINCIPAL

if TYPE_CHECKING:
    from pydantic import BaseModel

    from durable_agents._catalog import Catalog
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab.schemas import Approval, Decision, MessageAck

# Raised from here, defined light for the CLI; the workflow's public names, for the commands.
__all__ = [
    "ABORT_SIGNAL",
    "DECIDE_UPDATE",
    "EVENT_SIGNAL",
    "MESSAGE_UPDATE",
    "RESUME_SIGNAL",
    "RETRY_TURN_SIGNAL",
    "STATUS_QUERY",
    "TRANSCRIPT_QUERY",
    "WORKFLOW",
    "RequestError",
    "Unconfirmed",
]

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")
# The person's name and a proof for exactly the authorization details given (durable_agents.client).
Prover = Callable[[dict[str, Any]], Awaitable[tuple[str, str]]]


# An operator waits this long for a server that accepts connections but does not answer.
# Queries need a worker to answer; without one the server would hold the call for a long time.
NO_WORKER_QUERY_TIMEOUT = timedelta(seconds=3)
STATUSES: tuple[str, ...] = get_args(AgentStatusValue)
START_HINT = (
    "Start one with `agentctl server` (or `make demo`), or set TEMPORAL_ADDRESS "
    "(or --address) to a running server."
)
SUMMARY_LIMIT = 200  # characters of a run's title in the UI


def _query_timeout() -> timedelta:
    from durable_agents.settings import current

    return timedelta(seconds=current().query_timeout)


async def connect(address: str | None = None, timeout: float | None = None) -> Client:
    """The operator's client: TEMPORAL_* settings (envconfig), `address` over them, the
    project's data converter (encrypted when DURABLE_AGENTS_CODEC_KEYS is set), tracing if this
    process set it up, and a short deadline, so a wrong address fails in seconds with what was
    tried and what to do."""
    from durable_agents._codec import data_converter
    from durable_agents.settings import current
    from durable_agents.workers.client import connect_config

    settings = current()
    try:
        config = connect_config(address)
    except RuntimeError as exc:  # envconfig: unknown TEMPORAL_PROFILE, unreadable config file
        raise RequestError(f"Temporal client configuration is invalid: {exc}") from None
    target = config["target_host"]
    # Tracing is set up only by commands that start runs; a process that never loaded the
    # telemetry module has no tracer to carry.
    telemetry = sys.modules.get("durable_agents.workers.telemetry")
    interceptors = telemetry.interceptors() if telemetry is not None else []
    timeout = settings.connect_timeout if timeout is None else timeout
    try:
        return await asyncio.wait_for(
            Client.connect(
                **config,
                data_converter=data_converter(settings=settings),
                interceptors=interceptors,
            ),
            timeout,
        )
    except TimeoutError:
        raise RequestError(
            f"cannot reach the Temporal server at {target} (no answer within {timeout:g} s). "
            + START_HINT
        ) from None
    except RuntimeError as exc:
        raise RequestError(
            f"cannot reach the Temporal server at {target} ({exc}). " + START_HINT
        ) from None


def person(name: str, option: str = "--as") -> str:
    """A person's name in its one normal form, if the directory of the CLI's plugins knows
    them; else an RequestError saying what is wrong with `option`."""
    from durable_agents.errors import UnknownPerson

    try:
        return catalog().directory.person(name)
    except UnknownPerson as exc:
        raise RequestError(f"{option}: {exc}") from None


def service(name: str) -> bool:
    """Whether `name` is a service principal of the directory (runs code starts act for)."""
    from durable_agents._directory import normalize

    return normalize(name) in catalog().directory.services


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The agents this CLI knows: the same plugins a worker loads (installed entry points and
    DURABLE_AGENTS_PLUGINS), so a run's input is checked against the spec the worker runs."""
    from durable_agents._discovery import discover
    from durable_agents.errors import CatalogError

    try:
        return discover()
    except CatalogError as exc:
        raise RequestError(str(exc)) from None


def spec(agent: str) -> AgentSpec:
    """The agent's spec from the CLI's catalog, or an RequestError listing the known agents."""
    from durable_agents.errors import UnknownAgent

    try:
        return catalog().agent(agent)
    except UnknownAgent as exc:
        raise RequestError(str(exc)) from None


def _validated_input(spec: AgentSpec, data: dict[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    from durable_agents._spec import problems

    try:
        return spec.input_model.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise RequestError(f"input does not fit agent {spec.name!r}: {problems(exc)}") from None


def validate_run(run: AgentRun) -> None:
    """Refuse a run the workflow would refuse, before anything is started."""
    from durable_agents._routes import allowed_endpoints, checked_route
    from durable_agents.errors import InvalidRoute
    from durable_agents.settings import current

    person(run.principal, "principal")
    agent = spec(run.agent)
    _validated_input(agent, run.input)
    # The routes as a worker with this CLI's settings and plugins would take them.
    settings = current()
    allowed = allowed_endpoints(settings.model_endpoints)
    for route in run.model_route or agent.model_route:
        try:
            checked_route(route, catalog().providers, settings.model_providers, allowed)
        except InvalidRoute as exc:
            raise RequestError(str(exc)) from None
    known = catalog().scopes()
    unknown = sorted(set(run.scopes or []) - known)
    if unknown:
        raise RequestError(
            f"unknown scope {', '.join(map(repr, unknown))}; scopes: {', '.join(sorted(known))}"
        )


def summary(run: AgentRun) -> str:
    """The run's title in the UI and listings: the spec's `run_summary` of its validated input,
    safe to show on one line."""
    from durable_agents._vocab.text import printable

    agent = spec(run.agent)
    return printable(
        agent.run_summary(_validated_input(agent, run.input), person(run.principal, "principal")),
        SUMMARY_LIMIT,
    )


async def start_run(
    client: Client, run: AgentRun, workflow_id: str | None = None, task_queue: str | None = None
) -> WorkflowHandle[Any, AgentResult]:
    if task_queue is None:
        from durable_agents.settings import current

        task_queue = current().task_queue
    validate_run(run)
    _check_size(client, run)
    wid = workflow_id or new_run_id(run.agent)
    details = json.dumps(run.input, sort_keys=True)
    try:
        return await client.start_workflow(
            WORKFLOW,
            run,
            id=wid,
            task_queue=task_queue,
            result_type=AgentResult,
            static_summary=summary(run),
            static_details=f"Input: {details if len(details) <= 2000 else details[:2000] + ' …'}",
            search_attributes=_initial_attributes(run),
            # Idempotency keys are `<workflow id>/<tool call id>`: an id is never used twice.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise RequestError(
            f"a run with id {wid!r} already exists; pick another --id "
            f"or look at it with `agentctl status {wid}`"
        ) from None


def new_run_id(agent: str) -> str:
    """A run's workflow id: never used twice (idempotency keys and start proofs name it)."""
    return f"{agent}-{uuid.uuid4().hex[:10]}"


def _check_size(client: Client, run: AgentRun) -> None:
    """Refuse an input the run could not carry, before anything starts."""
    from durable_agents._vocab.failures import PAYLOAD_TOO_LARGE
    from durable_agents.workflows.payloads import DEFAULT_MAX_PAYLOAD

    size = client.data_converter.payload_converter.to_payloads([run])[0].ByteSize()
    limit = run.max_payload_bytes or DEFAULT_MAX_PAYLOAD
    if size > limit:
        raise RequestError(
            f"{PAYLOAD_TOO_LARGE}: the run's input is {size:,} bytes, over the limit of "
            f"{limit:,}; pass large documents by reference (an id or URL a tool can read)"
        )


async def pollers(client: Client, task_queue: str) -> int | None:
    """How many workers poll `task_queue` for workflow tasks; None when the server won't say."""
    try:
        return len(await _workflow_pollers(client, task_queue, 3))
    except RPCError:
        return None


async def _workflow_pollers(client: Client, task_queue: str, timeout: float) -> list[Any]:
    """The workers polling `task_queue` for workflow tasks, as the server lists them."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=timeout),
    )
    return list(resp.pollers)


def _initial_attributes(run: AgentRun) -> TypedSearchAttributes:
    """What `list` and the inbox filter on, from the start: the principal in its one form (the
    run normalises the name it was given the same way)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(AGENT_NAME, run.agent),
            SearchAttributePair(PRINCIPAL, person(run.principal, "principal")),
            SearchAttributePair(AGENT_STATUS, "running"),
        ]
    )


async def describe(client: Client, run_id: str) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "namespace" in exc.message.lower():
            raise RequestError(
                f"{exc.message} (set TEMPORAL_NAMESPACE to an existing one)"
            ) from None
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise RequestError(f"no run {run_id!r}: list runs with `agentctl list`") from None
        raise


async def task_failure(client: Client, run_id: str) -> str | None:
    """Why the run's latest workflow task failed, if no task has completed since (a worker
    that lacks its agent, a bug): read from the newest events, not the whole history."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest

    try:
        resp = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=run_id),
                maximum_page_size=20,
            ),
            timeout=timedelta(seconds=5),
        )
    except RPCError:
        return None
    for event in resp.history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            return None
        if event.HasField("workflow_task_failed_event_attributes"):
            return event.workflow_task_failed_event_attributes.failure.message or "no message"
    return None


def finished(desc: WorkflowExecutionDescription) -> str | None:
    """None while the run is open, else how it ended (completed, failed, …)."""
    if desc.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return None
    return desc.status.name.lower() if desc.status else "closed"


async def require_open(client: Client, run_id: str) -> None:
    desc = await describe(client, run_id)
    state = finished(desc)
    if state is not None:
        raise RequestError(f"run {run_id!r} has finished ({state}); it takes no more signals")


async def send_event(client: Client, run_id: str, name: str, payload: dict[str, Any]) -> None:
    await require_open(client, run_id)
    await client.get_workflow_handle(run_id).signal(
        EVENT_SIGNAL, EventSignal(name=name, payload=payload)
    )


def _no_worker(queue: str, seen: int | None) -> str:
    return (
        f"no worker polls its task queue {queue!r}"
        if seen == 0
        else f"no worker on its task queue {queue!r} answered"
    )


async def _query(client: Client, run_id: str, ask: Callable[[timedelta], Awaitable[T]]) -> T:
    """Answer a query, or say why not: queries are answered by a worker, not by the server.

    With no worker seen on the run's task queue the query gets a short deadline (the server's
    poller list can miss workers on other partitions, so it still gets its chance)."""
    desc = await describe(client, run_id)
    queue = desc.task_queue
    seen = await pollers(client, queue)
    deadline = NO_WORKER_QUERY_TIMEOUT if seen == 0 else _query_timeout()
    try:
        # The RPC's deadline, and ours: the client may retry a query that ran out of time.
        return await asyncio.wait_for(ask(deadline), deadline.total_seconds() + 0.5)
    except WorkflowQueryFailedError as exc:
        raise RequestError(f"run {run_id!r} could not answer: {exc.message}") from None
    except (RPCError, TimeoutError) as exc:
        if isinstance(exc, RPCError) and exc.status not in (
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.CANCELLED,
            RPCStatusCode.FAILED_PRECONDITION,  # "Workflow Task in failed state"
        ):
            raise
        stuck = await task_failure(client, run_id)
        if stuck is not None:
            raise RequestError(
                f"run {run_id!r} is waiting, not failed: its workflow task fails on the "
                f"workers of {queue!r} ({stuck}). Start a worker that serves it there "
                f"(e.g. `agentctl worker --task-queue {queue} --plugin <module>`)"
            ) from None
        raise RequestError(
            f"run {run_id!r} did not answer within {deadline.total_seconds():g} s: "
            f"{_no_worker(queue, seen)}; start one with `agentctl worker --task-queue {queue}`"
        ) from None


async def status(client: Client, run_id: str) -> AgentStatus:
    handle = client.get_workflow_handle(run_id)
    return await _query(
        client,
        run_id,
        lambda t: handle.query(STATUS_QUERY, result_type=AgentStatus, rpc_timeout=t),
    )


async def transcript(client: Client, run_id: str) -> list[TranscriptEntry]:
    handle = client.get_workflow_handle(run_id)
    return await _query(
        client,
        run_id,
        lambda t: handle.query(TRANSCRIPT_QUERY, result_type=list[TranscriptEntry], rpc_timeout=t),
    )


async def update(
    client: Client,
    run_id: str,
    queue: str,
    what: str,
    send: Callable[[], Awaitable[T]],
    check: str,
) -> T:
    """Deliver an update within the operator's deadline: a worker checks every update, and with
    none running the SDK would wait for one indefinitely. Past the deadline the update has been
    sent and the server keeps it for the run's next worker: `Unconfirmed`, saying how to check
    (`check`) before sending it again."""
    seen = await pollers(client, queue)
    deadline = NO_WORKER_QUERY_TIMEOUT if seen == 0 else _query_timeout()
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    try:
        return await asyncio.wait_for(send(), deadline.total_seconds())
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # the SDK's, on cancel
        raise Unconfirmed(
            f"{what} sent to {run_id} but not confirmed within {deadline.total_seconds():g} s "
            f"({_no_worker(queue, seen)}): it may still be applied when a worker takes the run "
            f"up. Check with {check} before sending it again; start a worker with "
            f"`agentctl worker --task-queue {queue}`"
        ) from None


async def result(client: Client, run_id: str, wait: bool) -> AgentResult:
    desc = await describe(client, run_id)
    if finished(desc) is None and not wait:
        raise RequestError(
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
        raise RequestError(f"run {handle.id!r} ended without a result: {why}") from None


# A run that continued as new is one run: show only the latest of its chain.
ONE_ROW_PER_RUN = "ExecutionStatus != 'ContinuedAsNew'"


def list_query(agent: str | None = None, status: str | None = None) -> str:
    """The visibility query for `agentctl list`; filter values are checked, never spliced raw."""
    clauses = [f"WorkflowType = '{WORKFLOW}'", ONE_ROW_PER_RUN]
    if agent is not None:
        if not _NAME.fullmatch(agent):
            raise RequestError(
                f"--agent {agent!r} is not an agent name (letters, digits, '_', '-', '.' only)"
            )
        clauses.append(f"AgentName = '{agent}'")
    if status is not None:
        if status not in STATUSES:
            raise RequestError(
                f"--status {status!r} is not a run status; one of: {', '.join(STATUSES)}"
            )
        clauses.append(f"AgentStatus = '{status}'")
    return " AND ".join(clauses)


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
# How many runs are looked at at once (describe, status) for one listing.
CONCURRENCY = 16


async def list_runs(
    client: Client, query: str, limit: int, problems: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Runs from visibility, newest first. A run that cannot be shown (its row does not decode,
    or its workflow task keeps failing: it is not what its search attributes say) is left out
    and named in `problems` (run id → why), so one broken run never takes the listing down."""
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=limit):
        try:
            attrs = wf.typed_search_attributes
            rows.append(
                {
                    "run": wf.id,
                    "agent": attrs.get(AGENT_NAME),
                    "status": attrs.get(AGENT_STATUS),
                    "principal": attrs.get(PRINCIPAL),
                    "started": wf.start_time.isoformat(timespec="seconds"),
                    "temporal": wf.status.name.lower() if wf.status else "",
                    # The worker version it runs on (Worker Deployment Versioning), if any.
                    "version": _version(wf.search_attributes),
                }
            )
        except Exception as exc:  # one bad row: leave it out, say so, go on
            _note(problems, wf.id, f"its listing cannot be read ({type(exc).__name__}: {exc})")
    broken = await stuck([r["run"] for r in rows if r["temporal"] == "running"], client)
    for run_id, why in broken.items():
        _note(problems, run_id, why)
    if not any(r["version"] for r in rows):
        for r in rows:
            del r["version"]  # no versioning: no empty column
    return [r for r in rows if r["run"] not in broken]


def _version(attributes: Any) -> str:
    """`build` of `deployment:build`, from Temporal's own search attribute."""
    value = (attributes or {}).get("TemporalWorkerDeploymentVersion") or ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).split(":", 1)[-1]


def _note(problems: dict[str, str] | None, run_id: str, why: str) -> None:
    if problems is not None:
        problems[run_id] = why


async def stuck(run_ids: list[str], client: Client) -> dict[str, str]:
    """Of these open runs, those whose workflow task keeps failing (the code cannot run them:
    queries and updates get "Workflow Task in failed state"), each with the failure."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def check(run_id: str) -> str | None:
        async with gate:
            try:
                return await why_stuck(client, run_id)
            except (RPCError, RequestError):
                return None  # gone or unreadable since it was listed: nothing to say

    found = await asyncio.gather(*map(check, run_ids))
    return {r: why for r, why in zip(run_ids, found, strict=True) if why is not None}


async def why_stuck(client: Client, run_id: str) -> str | None:
    """Why the run's workflow task keeps failing, or None if it does not (a retried task after a
    worker's crash is not a failure of the run)."""
    from temporalio.api.workflowservice.v1 import (
        GetWorkflowExecutionHistoryReverseRequest,
    )

    desc = await describe(client, run_id)
    pending = desc.raw_description.pending_workflow_task
    if finished(desc) is not None or pending.attempt < 2:
        return None
    resp = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=desc.raw_description.workflow_execution_info.execution,
            maximum_page_size=20,
        ),
        timeout=timedelta(seconds=5),
    )
    for event in resp.history.events:
        if event.HasField("workflow_task_failed_event_attributes"):
            failure = event.workflow_task_failed_event_attributes.failure
            return (
                f"its workflow task keeps failing (attempt {pending.attempt}): "
                f"{failure.message or 'no message'}"
            )
        if event.HasField("workflow_task_completed_event_attributes") or event.HasField(
            "workflow_task_timed_out_event_attributes"
        ):
            return None
    return None


# --- approvals, messages and operators' choices: each carries its person's proof -------------


def age(since: datetime) -> str:
    minutes = int((datetime.now(UTC) - since).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // 1440} days"


def _why(exc: BaseException) -> str:
    """What went wrong reading a run, in a few words."""
    from temporalio.service import RPCError

    if isinstance(exc, RequestError):
        return str(exc)
    if isinstance(exc, RPCError):
        return f"its status query failed ({exc.status.name}): {exc.message}"
    return f"its status could not be read ({type(exc).__name__}: {exc})"


async def pending(
    client: Client, approver: str | None, problems: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Pending approvals across runs. A run that cannot answer its `status` query (no worker
    serves it, its workflow task keeps failing, any other error) is left out and named in
    `problems` (run id → why), instead of taking the whole inbox down."""
    import asyncio

    from durable_agents._approvals import may_decide

    query = (
        f"WorkflowType = '{WORKFLOW}' AND AgentStatus = 'waiting_approval' AND {ONE_ROW_PER_RUN}"
    )
    ids = [wf.id async for wf in client.list_workflows(query, limit=500)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def read(run_id: str) -> AgentStatus | None:
        async with gate:
            try:
                return await status(client, run_id)
            except Exception as exc:  # one run's trouble is never the inbox's
                if problems is not None:
                    problems[run_id] = _why(exc)
                return None

    rows = []
    for run_id, read_status in zip(ids, await asyncio.gather(*map(read, ids)), strict=True):
        if read_status is None:
            continue
        for a in read_status.approvals:
            if a.state != "pending":
                continue
            if approver and not may_decide(
                approver, a.requested_for, a.groups, catalog().directory
            ):
                continue
            rows.append(
                {
                    "run": run_id,
                    "agent": read_status.agent,
                    "approval": a.id,
                    "tool": a.tool,
                    "arguments": a.summary,
                    "age": age(a.requested_at),
                    "may decide": ", ".join(a.requested_for + [f"@{g}" for g in a.groups]),
                    "digest": a.digest,
                    # For consoles and scripts (--json); the CLI's table leaves them out.
                    "principal": read_status.principal,
                    "rule": a.rule,
                    "requested_at": a.requested_at.isoformat(),
                    "expires_at": a.expires_at.isoformat(),
                    "escalations": len(a.escalations),
                }
            )
    return rows


def recorded(approvals: list[Approval], d: Decision) -> Approval | None:
    """The decision already on record that `d` exactly repeats, if any."""
    verdict = "approved" if d.approve else "rejected"
    same = [
        a
        for a in approvals
        if a.decided_by == d.approver
        and a.state == verdict
        and d.approval_id in (None, a.id)
        and d.digest in (None, a.digest)
        and a.edited_arguments == d.arguments
    ]
    return same[-1] if same else None


async def decide(client: Client, run_id: str, decision: Decision, prover: Prover) -> Approval:
    """Decide through the `decide` update; an exact repeat returns the recorded decision, also
    once the run has finished (an operator retrying after a lost answer sees what happened).
    Sent but not confirmed in time: `Unconfirmed` (exit 3)."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    from durable_agents._vocab.schemas import Approval

    desc = await describe(client, run_id)
    ended = finished(desc)
    if ended is None:
        handle = client.get_workflow_handle(run_id)
        decision = await proven(client, run_id, decision, prover)
        try:
            return await update(
                client,
                run_id,
                desc.task_queue,
                "decision",
                lambda: handle.execute_update(DECIDE_UPDATE, decision, result_type=Approval),
                check=f"`agentctl approvals show {run_id}` or `agentctl status {run_id}`",
            )
        except WorkflowUpdateFailedError as exc:
            text = _refusal(exc)
            if decision.digest is not None and "digest" in text:
                text += f" (`agentctl approvals show {run_id}` prints what waits, with its digest)"
            raise RequestError(f"decision refused: {text}") from None
        except RPCError as exc:
            ended = finished(await describe(client, run_id))
            if ended is None:
                raise RequestError(f"decision not delivered to {run_id}: {exc.message}") from None
    # Finished (perhaps just now): only an exact repeat of a recorded decision has an answer.
    now = await status(client, run_id)
    earlier = recorded(now.approvals, decision)
    if earlier is None:
        raise RequestError(f"run {run_id!r} has finished ({ended}); it takes no more decisions")
    return earlier


async def proven(client: Client, run_id: str, decision: Decision, prover: Prover) -> Decision:
    """The decision with its approval named and a proof, from the signed-in person, for
    exactly it: this approval of this run, this verdict, these arguments (their digest), this
    reason."""

    from durable_agents._vocab import proofs

    if decision.approval_id is not None and decision.digest is not None:
        # What the approver read names it all: no need to ask the run (whose worker may be
        # away: the decision then waits for one).
        details = proofs.decision(
            run_id,
            decision.approval_id,
            decision.approve,
            decision.digest,
            decision.reason,
            edited_digest(decision),
        )
        person, proof = await prover(details)
        return decision.model_copy(update={"approver": person, "proof": proof})
    approval = chosen((await status(client, run_id)).approvals, decision, run_id)
    details = proofs.decision(
        run_id,
        approval.id,
        decision.approve,
        approval.digest,
        decision.reason,
        edited_digest(decision),
    )
    person, proof = await prover(details)
    return decision.model_copy(
        update={"approval_id": approval.id, "approver": person, "proof": proof}
    )


def chosen(approvals: list[Approval], decision: Decision, run_id: str) -> Approval:
    """The approval `decision` is for: the one it names, else the only pending one (or, none
    pending, the latest: a repeat of a decision made); with the digest it quotes, if any."""
    waiting = [a for a in approvals if a.state == "pending"]
    if decision.approval_id is not None:
        found = [a for a in approvals if a.id == decision.approval_id]
    else:
        found = waiting if len(waiting) == 1 else []
        if not waiting and approvals:  # a repeat of a decision already made
            found = [approvals[-1]]
    if not found:
        ids = ", ".join(a.id for a in waiting) or "none"
        if decision.approval_id is not None:
            raise RequestError(
                f"decision refused: no approval {decision.approval_id!r} on this run; "
                f"pending: {ids}"
            )
        raise RequestError(f"decision refused: name the approval to decide; pending: {ids}")
    approval = found[0]
    if decision.digest is not None and decision.digest != approval.digest:
        raise RequestError(
            f"decision refused: approval {approval.id} is for arguments with digest "
            f"{approval.digest}, not {decision.digest}: look again with `agentctl approvals "
            f"show {run_id}`"
        )
    return approval


def edited_digest(decision: Decision) -> str | None:
    from durable_agents._vocab import proofs

    return None if decision.arguments is None else proofs.arguments_digest(decision.arguments)


def edits(approval: Approval, changes: dict[str, str]) -> dict[str, Any]:
    """Every argument of `approval` with `changes` (NAME: text) applied: text for an argument
    that is text, JSON for any other (a number, a list); RequestError for what the approval
    does not let a person edit."""
    import json

    if not approval.editable:
        raise RequestError(
            f"approval {approval.id}'s rule allows no edits: approve or reject it as it is"
        )
    edited = dict(approval.arguments)
    for name, text in changes.items():
        if name not in approval.arguments:
            raise RequestError(
                f"{approval.tool} takes no argument {name!r}; it takes "
                f"{', '.join(sorted(approval.arguments))}"
            )
        if name not in approval.editable:
            raise RequestError(
                f"approval {approval.id} lets a person edit only "
                f"{', '.join(approval.editable)}; not {name}"
            )
        if isinstance(approval.arguments[name], str):
            edited[name] = text
            continue
        try:
            edited[name] = json.loads(text)
        except ValueError:
            raise RequestError(
                f"{name} is not text: give it as JSON (e.g. {json.dumps(approval.arguments[name])})"
            ) from None
    return edited


def built(model: type[M], **fields: Any) -> M:
    """A message into a run, built as the run reads it; what it would refuse for its form (a
    reason over the limit, an empty text) is refused here, in one line."""
    from pydantic import ValidationError

    from durable_agents._spec import problems

    try:
        return model(**fields)
    except ValidationError as exc:
        raise RequestError(f"cannot send this {model.__name__}: {problems(exc)}") from None


async def operate(client: Client, run_id: str, signal: str, arg: Any, prover: Prover) -> None:
    """Check the run needs attention, then send the operator's choice with a proof for it."""
    from durable_agents._vocab import proofs

    status_ = await status(client, run_id)
    if status_.status != "needs_attention":
        raise RequestError(f"run {run_id} does not need attention (it is {status_.status})")
    arg.by, arg.proof = await prover(proofs.operator(run_id, signal, arg.reason))
    await client.get_workflow_handle(run_id).signal(signal, arg)


async def send_message(client: Client, run_id: str, text: str, prover: Prover) -> MessageAck:
    """A message for the run (an answer to its question, or a follow-up for its next turn),
    with the sender's proof for exactly this text."""
    from temporalio.client import WorkflowUpdateFailedError

    from durable_agents._vocab import proofs
    from durable_agents._vocab.schemas import MessageAck, UserMessage

    desc = await describe(client, run_id)
    finished_ = finished(desc)
    if finished_ is not None:
        raise RequestError(f"run {run_id!r} has finished ({finished_}); it takes no more messages")
    handle = client.get_workflow_handle(run_id)
    msg = built(UserMessage, text=text)
    msg.sender, msg.proof = await prover(proofs.message(run_id, text))
    try:
        return await update(
            client,
            run_id,
            desc.task_queue,
            "message",
            lambda: handle.execute_update(MESSAGE_UPDATE, msg, result_type=MessageAck),
            check=f"`agentctl transcript {run_id}` or `agentctl status {run_id}`",
        )
    except WorkflowUpdateFailedError as exc:
        raise RequestError(f"message refused: {_refusal(exc)}") from None


def _refusal(exc: Any) -> str:
    """Why the run refused an update (its validator's or handler's words)."""
    from temporalio.exceptions import ApplicationError

    cause = exc.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause)
