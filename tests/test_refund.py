"""The support-refund saga: approval over the limit, exactly one refund, compensations on a no."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from durable_agents._vocab.schemas import AgentResult, AgentRun
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.search import AGENT_STATUS
from tests.helpers import wait_for_status
from tests.people import decide, operator, start_run


def seed(sim_url: str, amount: str) -> dict[str, Any]:
    response = httpx.post(f"{sim_url}/admin/seed/order", json={"amount": amount})
    response.raise_for_status()
    return response.json()


async def start_refund(
    client: Client,
    task_queue: str,
    order: dict[str, Any],
    reason: str = "arrived broken",
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, AgentResult]:
    data = {k: order[k] for k in ("customer_id", "email", "order_id", "ticket_id", "amount")}
    run = AgentRun(agent="refund", input=data | {"reason": reason}, principal="agent-desk")
    return await start_run(client, run, workflow_id, task_queue=task_queue)


def ticket(sim_url: str, ticket_id: str) -> dict[str, Any]:
    return httpx.get(f"{sim_url}/tickets/{ticket_id}").json()


async def test_small_refund_needs_no_approval(ts_env, ts_worker, sim, task_queue, ledger):
    order = seed(sim.url, "45.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    result = await handle.result()
    assert result.outcome == "completed", result.answer
    assert (await handle.query(AgentWorkflow.status)).approvals == []
    assert ledger(handle.id, "issue_refund") == 1
    assert ticket(sim.url, order["ticket_id"])["status"] == "resolved"


async def test_large_refund_approved_by_a_lead_issues_exactly_one(
    ts_env, ts_worker, sim, task_queue, ledger
):
    order = seed(sim.url, "250.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    await wait_for_status(handle, "waiting_approval")
    [approval] = (await handle.query(AgentWorkflow.status)).approvals
    assert approval.tool == "issue_refund" and approval.arguments["amount"] == "250.00"
    assert ledger(handle.id, "place_hold") == 1 and ledger(handle.id, "issue_refund") == 0

    await decide(handle, "sam", True)
    result = await handle.result()

    assert result.outcome == "completed", result.answer
    assert ledger(handle.id, "issue_refund") == 1
    assert ledger(handle.id, "release_hold") == 0
    assert ticket(sim.url, order["ticket_id"])["status"] == "resolved"


async def test_rejected_refund_runs_compensations_in_reverse(
    ts_env, ts_worker, sim, task_queue, ledger
):
    order = seed(sim.url, "250.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    await wait_for_status(handle, "waiting_approval")
    await decide(handle, "lee", False, "outside policy")
    result = await handle.result()

    assert result.outcome == "rejected"
    assert "rejected by lee: outside policy" in result.answer
    # A correct rejection is its own outcome, not a failure: in status and the search attribute.
    assert (await handle.query(AgentWorkflow.status)).status == "rejected"
    described = await handle.describe()
    assert described.typed_search_attributes.get(AGENT_STATUS) == "rejected"
    assert ledger(handle.id, "issue_refund") == 0
    assert ledger(handle.id, "release_hold") == 1
    notes = ticket(sim.url, order["ticket_id"])
    assert notes["status"] == "refund_rejected"
    assert "outside policy" in notes["notes"][-1]["note"]
    undone = [
        e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "compensation"
    ]
    assert [u.split("(")[0] for u in undone] == ["release_hold", "update_ticket"]


async def test_expired_refund_parks_until_an_operator_resumes(
    ts_env, ts_worker, sim, task_queue, ledger
):
    order = seed(sim.url, "300.00")
    handle = await start_refund(ts_env.client, task_queue, order)
    await wait_for_status(handle, "waiting_approval")
    await ts_env.sleep(timedelta(days=3, hours=1))
    status = await handle.query(AgentWorkflow.status)
    assert status.status == "needs_attention"
    assert "apr-1 expired" in (status.last_error or "")

    await handle.signal(AgentWorkflow.resume, operator(handle.id, "resume", "olga"))
    await wait_for_status(handle, "waiting_approval")
    [old, new] = (await handle.query(AgentWorkflow.status)).approvals
    assert (old.state, old.escalations[0].groups, new.state) == (
        "expired",
        ["support-managers"],
        "pending",
    )
    await decide(handle, "sam", True, approval_id="apr-2")
    assert (await handle.result()).outcome == "completed"
    assert ledger(handle.id, "issue_refund") == 1
