"""Small things several tests need: a sample hire, starting a run, polling a status."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import tomllib
import uuid
from collections.abc import Generator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import AgentResult, AgentRun, AgentStatusValue, Approval
from durable_agents.starters.devserver import binary
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.search import ALL as SEARCH_ATTRIBUTES
from sim.world import world  # noqa: F401  (re-exported for the tests)


def hire(**overrides: Any) -> dict[str, Any]:
    data = {
        "employee_id": f"E{uuid.uuid4().hex[:6]}",
        "full_name": "Ada Lovelace",
        "personal_email": "ada@lovelace.example",
        "start_date": date(2026, 12, 1).isoformat(),
        "ship_to": "12 St James's Square, London",
    }
    return data | overrides


async def start_onboarding(
    client: Client,
    task_queue: str,
    route: str | list[str] | None = None,
    principal: str = "tester",
    workflow_id: str | None = None,
    **run: Any,
) -> WorkflowHandle[Any, AgentResult]:
    agent_run = AgentRun(
        agent="onboarding",
        input=hire(),
        principal=principal,
        model_route=[route] if isinstance(route, str) else route,
        **run,
    )
    from tests.people import start_run

    return await start_run(client, agent_run, workflow_id, task_queue=task_queue)


async def wait_for_status(
    handle: WorkflowHandle[Any, Any], status: AgentStatusValue, timeout: float = 30
) -> None:
    async def poll() -> None:
        while (await handle.query(AgentWorkflow.status)).status != status:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


async def start_time_skipping() -> WorkflowEnvironment:
    """The time-skipping server with the project's search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=binary("temporal-test-server"),
    )
    # Unlike the dev server, it fails upserts of attributes it was not told about.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


async def approve_pending(
    handle: WorkflowHandle[Any, Any], approver: str = "hana", timeout: float = 30
) -> Approval:
    """Wait for the run to ask for approval, then approve it through the `decide` update."""
    from tests.people import People

    await wait_for_status(handle, "waiting_approval", timeout)
    assert People.current is not None, "approve_pending needs the sim (its people sign in there)"
    approval: Approval = await People.current.decide(handle, approver, True, "looks right")
    return approval


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def wait_for_ledger(ledger, run_id: str, action: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while ledger(run_id, action) == 0:
        assert time.monotonic() < deadline, f"{action} never reached the sim"
        await asyncio.sleep(0.05)


async def chain_histories(
    client: Client, workflow_id: str, first_run: str
) -> list[WorkflowHistory]:
    """Every run of a workflow that continued as new, oldest first."""
    histories, run_id = [], first_run
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return histories


# The sim's systems take a token from its identity provider for every change. Tests that call
# them over plain HTTP get one the way a worker does: by token exchange, as the sim agent that
# may ask for the scope, with the request's idempotency key as token id.
SIM_SYSTEMS = {
    "/hr/mailboxes": ("onboarding", "hr", "hr:write"),
    "/it/laptops": ("onboarding", "it", "it:write"),
    "/mail/messages": ("onboarding", "mail", "mail:send"),
    "/payments/holds": ("refund", "payments", "payments:write"),
    "/payments/holds/release": ("refund", "payments", "payments:write"),
    "/payments/refunds": ("refund", "payments", "payments:refund"),
    "/tickets/update": ("refund", "tickets", "tickets:write"),
}


def sim_token(
    sim_url: str,
    credentials: Path,
    agent: str,
    audience: str,
    scope: str,
    token_id: str | None = None,
    principal: str = "tester",
) -> str:
    """A token from the sim's identity provider for `agent` acting for `principal`."""
    client = tomllib.loads(credentials.read_text())[agent]
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requested_subject": principal,
        "audience": audience,
        "scope": scope,
    }
    if token_id:
        form["durable_agents_token_id"] = token_id
    answer = httpx.post(
        f"{sim_url}/idp/token",
        data=form,
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


class SimTokens(httpx.Auth):
    """httpx auth for the sim's systems: a POST to one that changes state carries a token."""

    def __init__(self, sim_url: str, credentials: Path) -> None:
        self.sim_url, self.credentials = sim_url, credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        system = SIM_SYSTEMS.get(request.url.path)
        if request.method == "POST" and system and "authorization" not in request.headers:
            key = request.headers.get("idempotency-key") or None
            token = sim_token(self.sim_url, self.credentials, *system, token_id=key)
            request.headers["Authorization"] = f"Bearer {token}"
        yield request
