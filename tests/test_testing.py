"""`durable_agents.testing`: a scripted model in-process and runs on the time-skipping server,
with no sim and no HTTP: what users test their own agents with."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio.testing import WorkflowEnvironment

from durable_agents import (
    WAIT_FOR_EVENT,
    AgentSet,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    ToolContext,
    tool,
)
from durable_agents._directory import Directory
from durable_agents._vocab.schemas import LLMRequest
from durable_agents.testing import (
    AgentEnvironment,
    Message,
    Reply,
    ScriptedModel,
    call,
    results,
    run_agent,
    task_input,
)

PAID: dict[str, str] = {}  # idempotency key -> invoice id: what the "system" did


class InvoiceId(BaseModel):
    invoice_id: str


class Invoice(BaseModel):
    invoice_id: str
    amount: str
    status: str


class Payment(BaseModel):
    invoice_id: str
    status: str


@tool(side_effect="read_only")
async def lookup_invoice(args: InvoiceId, ctx: ToolContext) -> Invoice:
    """Look an invoice up."""
    return Invoice(invoice_id=args.invoice_id, amount="120.00", status="open")


@tool(side_effect="irreversible")
async def pay_invoice(args: InvoiceId, ctx: ToolContext) -> Payment:
    """Pay an open invoice."""
    PAID[ctx.idempotency_key] = args.invoice_id
    return Payment(invoice_id=args.invoice_id, status="paid")


def payer(messages: list[Message]) -> Reply:
    invoice = task_input(messages)["invoice_id"]
    if not results(messages, "lookup_invoice"):
        return call("lookup_invoice", invoice_id=invoice)
    paid = results(messages, "pay_invoice")
    if not paid:
        return call("pay_invoice", invoice_id=invoice)
    outcome = paid[-1]
    return f"{invoice}: {outcome.get('status') or outcome['approval']} {outcome.get('reason', '')}"


PAYER = AgentSpec(
    name="payer",
    version="1",
    description="Pays invoices.",
    system_prompt="Look the invoice up, then pay it.",
    model_route=("scripted:payer",),
    tools=(lookup_invoice, pay_invoice),
    input_model=InvoiceId,
    approvals=ApprovalPolicy(
        rules=(ApprovalRule(tool="pay_invoice", description="money leaves", groups=("payers",)),)
    ),
)
# `operators` are asked about runaway runs and budgets by default.
PEOPLE = Directory(people=frozenset({"alice"}), groups={"payers": {"olga"}, "operators": {"omar"}})
AGENTS = AgentSet((PAYER,), directory=PEOPLE)
MODELS = [ScriptedModel("payer", payer)]


@pytest.fixture
async def agents(ts_env: WorkflowEnvironment) -> AsyncIterator[AgentEnvironment]:
    async with AgentEnvironment(AGENTS, models=MODELS, env=ts_env) as env:
        yield env


def payments(workflow_id: str) -> list[str]:
    return [v for k, v in PAID.items() if k.startswith(f"{workflow_id}/")]


async def test_an_agent_with_a_tool_and_an_approval_completes_in_seconds() -> None:
    started = time.monotonic()
    run = await run_agent(
        AGENTS,
        "payer",
        {"invoice_id": "INV-1"},
        models=MODELS,
        approvals={"pay_invoice": ("olga", True)},
    )
    assert run.outcome == "completed" and run.answer.startswith("INV-1: paid")
    assert payments(run.workflow_id) == ["INV-1"]
    [approval] = run.status.approvals
    assert (approval.tool, approval.state, approval.decided_by) == (
        "pay_invoice",
        "approved",
        "olga",
    )
    assert run.result.usage.input_tokens > 0 and run.result.usage.output_tokens > 0
    assert [e.kind for e in run.transcript].count("tool_result") == 2
    assert time.monotonic() - started < 30  # server start included


async def test_a_rejection_goes_back_to_the_model(agents: AgentEnvironment) -> None:
    run = await agents.run(
        "payer", {"invoice_id": "INV-2"}, approvals={"pay_invoice": ("olga", False, "not now")}
    )
    assert run.outcome == "completed" and run.answer == "INV-2: rejected not now"
    assert payments(run.workflow_id) == []


async def test_an_approval_nobody_answers_expires_in_simulated_time(
    agents: AgentEnvironment,
) -> None:
    started = time.monotonic()
    run = await agents.run("payer", {"invoice_id": "INV-3"})
    assert run.answer == "INV-3: expired "  # three days later, for the run
    assert time.monotonic() - started < 15
    [approval] = run.status.approvals
    assert approval.expires_at - approval.requested_at == timedelta(days=3)


async def test_a_wait_nobody_ends_runs_out_in_simulated_time(ts_env: WorkflowEnvironment) -> None:
    def waiter(messages: list[Message]) -> Reply:
        waited = results(messages, "wait_for_event")
        if not waited:
            return call("wait_for_event", events=["invoice_disputed"], timeout_hours=48)
        return f"{waited[-1]['status']} after {waited[-1]['waited_hours']} h"

    spec = dataclasses.replace(PAYER, name="waiter", tools=(WAIT_FOR_EVENT,), approvals=None)
    started = time.monotonic()
    async with AgentEnvironment(
        AgentSet((spec,), directory=PEOPLE), models=[ScriptedModel("payer", waiter)], env=ts_env
    ) as env:
        run = await env.run("waiter", {"invoice_id": "INV-8"})
    assert run.answer == "timeout after 48.0 h"
    assert time.monotonic() - started < 15


async def test_approvals_may_be_decided_by_a_function(agents: AgentEnvironment) -> None:
    seen = []

    def decide(approval):  # type: ignore[no-untyped-def]
        seen.append(approval.arguments)
        from durable_agents import Decision

        return Decision(approve=True, approver="olga", reason="checked")

    run = await agents.run("payer", {"invoice_id": "INV-4"}, principal="alice", approvals=decide)
    assert run.outcome == "completed" and seen == [{"invoice_id": "INV-4"}]
    assert run.status.principal == "alice"


async def test_a_model_the_worker_was_not_given_parks_the_run(agents: AgentEnvironment) -> None:
    run = await agents.run("payer", {"invoice_id": "INV-5"}, model_route=["scripted:nobody"])
    assert run.finished is None and run.status.status == "needs_attention"
    assert "no scripted model 'nobody' on this worker (given: payer)" in str(run.status.last_error)
    with pytest.raises(AssertionError, match="did not finish: it is needs_attention"):
        run.result  # noqa: B018


async def test_a_script_that_fails_parks_the_run_with_its_error(
    ts_env: WorkflowEnvironment,
) -> None:
    def broken(messages: list[Message]) -> Reply:
        return {"not": "a reply"}  # type: ignore[return-value]

    async with AgentEnvironment(AGENTS, models=[ScriptedModel("payer", broken)], env=ts_env) as env:
        run = await env.run("payer", {"invoice_id": "INV-6"})
    assert run.status.status == "needs_attention"
    assert "the script of scripted model 'payer' failed: TypeError" in str(run.status.last_error)


async def test_a_run_is_refused_before_it_starts(agents: AgentEnvironment) -> None:
    with pytest.raises(LookupError, match="unknown agent 'nobody'"):
        await agents.start("nobody", {})
    with pytest.raises(ValueError, match="'mallory' is not in the directory"):
        await agents.start("payer", {"invoice_id": "INV-7"}, principal="mallory")
    with pytest.raises(ValueError, match="invoice_id"):
        await agents.start("payer", {})


async def test_a_scripted_reply_gets_unique_call_ids_and_a_token_count() -> None:
    model = ScriptedModel("m", lambda messages: [call("a", x=1), call("b")])
    request = LLMRequest(
        route=model.route, system="s" * 400, messages=[Message(role="user", content="hi")], turn=3
    )
    reply = await model.complete(request)
    assert [c.id for c in reply.message.tool_calls] == ["call-3-1-0", "call-3-1-1"]
    assert reply.usage.input_tokens > 100 and reply.model == "m"
    assert reply.finish_reason == "tool_calls"
