"""Small things several tests need: a sample hire, starting a run, polling a status."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

from temporalio.client import Client, WorkflowHandle

from starters import ops
from workflows.agent import AgentWorkflow
from workflows.models import AgentResult, AgentRun, AgentStatusValue


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
    client: Client, task_queue: str, route: str | None = None, **run: Any
) -> WorkflowHandle[Any, AgentResult]:
    agent_run = AgentRun(
        agent="onboarding",
        input=hire(),
        principal="tester",
        model_route=[route] if route else None,
        **run,
    )
    return await ops.start_run(client, agent_run, task_queue=task_queue)


async def wait_for_status(
    handle: WorkflowHandle[Any, Any], status: AgentStatusValue, timeout: float = 30
) -> None:
    async def poll() -> None:
        while (await handle.query(AgentWorkflow.status)).status != status:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)
