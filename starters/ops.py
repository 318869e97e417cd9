"""What operators do to runs: start, signal, inspect. The CLI is a thin layer over these."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from pydantic import ValidationError
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from agents import UnknownAgent, get_agent
from agents.routes import InvalidRoute, parse_route
from agents.spec import problems
from workers.client import TASK_QUEUE
from workflows.agent import AgentWorkflow
from workflows.models import AgentResult, AgentRun, AgentStatus, EventSignal, TranscriptEntry
from workflows.search import AGENT_NAME, AGENT_STATUS, PRINCIPAL

UI_URL = os.environ.get("DURABLE_AGENTS_UI_URL", "http://127.0.0.1:8233")


class OpError(Exception):
    """A request an operator made that cannot be carried out; the message says what to do."""


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


def summary(run: AgentRun) -> str:
    who = run.input.get("full_name") or run.input.get("employee_id") or ""
    return f"{run.agent} agent{' for ' + str(who) if who else ''} · on behalf of {run.principal}"


async def start_run(
    client: Client, run: AgentRun, workflow_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, AgentResult]:
    validate_run(run)
    wid = workflow_id or f"{run.agent}-{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        AgentWorkflow.run,
        run,
        id=wid,
        task_queue=task_queue,
        static_summary=summary(run),
        static_details=f"Input: {json.dumps(run.input, sort_keys=True)}",
        search_attributes=_initial_attributes(run),
    )


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


async def status(client: Client, run_id: str) -> AgentStatus:
    await describe(client, run_id)
    return await client.get_workflow_handle(run_id).query(AgentWorkflow.status)


async def transcript(client: Client, run_id: str) -> list[TranscriptEntry]:
    await describe(client, run_id)
    return await client.get_workflow_handle(run_id).query(AgentWorkflow.transcript)


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
    return await handle.result()


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
