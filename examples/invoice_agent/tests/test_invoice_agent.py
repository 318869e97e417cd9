"""The invoice agent with a scripted model on Temporal's time-skipping server: no sim, no HTTP,
a few seconds. The agent's own tools run against a fresh payables file per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoice_agent import AGENTS, ledger

from durable_agents.testing import (
    Message,
    Reply,
    ScriptedModel,
    call,
    results,
    run_agent,
    task_input,
)


def clerk(messages: list[Message]) -> Reply:
    """The model, as a script: look the invoice up, pay it if it is open, say what happened."""
    invoice_id = task_input(messages)["invoice_id"]
    found = results(messages, "lookup_invoice")
    if not found:
        return call("lookup_invoice", invoice_id=invoice_id)
    paid = results(messages, "pay_invoice")
    if not paid and found[-1]["status"] == "open":
        return call("pay_invoice", invoice_id=invoice_id, amount=found[-1]["amount"])
    if paid:
        last = paid[-1]
        return f"{invoice_id}: {last.get('status') or last['approval']} {last.get('reason', '')}"
    return f"{invoice_id}: {found[-1]['status']}, nothing to pay"


MODEL = ScriptedModel("clerk", clerk)
ROUTE = [MODEL.route]  # instead of the spec's sim route, for these runs


@pytest.fixture(autouse=True)
def payables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ledger.DB_ENV, str(tmp_path / "payables.sqlite3"))


async def test_an_open_invoice_is_paid_once_after_approval() -> None:
    run = await run_agent(
        AGENTS,
        "invoice",
        {"invoice_id": "INV-1"},
        models=[MODEL],
        model_route=ROUTE,
        principal="alice",
        approvals={"pay_invoice": ("olga", True)},
    )
    assert run.outcome == "completed" and run.answer.startswith("INV-1: paid")
    [payment] = ledger.payments()
    assert (payment.invoice_id, payment.amount) == ("INV-1", "120.00")
    assert payment.idempotency_key.startswith(f"{run.workflow_id}/")
    [approval] = run.status.approvals
    assert (approval.state, approval.decided_by, approval.groups) == (
        "approved",
        "olga",
        ["accounts-payable"],
    )


async def test_a_rejected_payment_pays_nothing_and_the_model_is_told() -> None:
    run = await run_agent(
        AGENTS,
        "invoice",
        {"invoice_id": "INV-2"},
        models=[MODEL],
        model_route=ROUTE,
        principal="alice",
        approvals={"pay_invoice": ("pat", False, "duplicate of INV-1")},
    )
    assert run.answer == "INV-2: rejected duplicate of INV-1"
    assert ledger.payments() == []


async def test_a_paid_invoice_is_not_paid_again() -> None:
    run = await run_agent(
        AGENTS, "invoice", {"invoice_id": "INV-3"}, models=[MODEL], model_route=ROUTE
    )
    assert run.answer == "INV-3: paid, nothing to pay" and run.status.approvals == []


async def test_a_payment_the_system_refuses_goes_back_to_the_model() -> None:
    def overpay(messages: list[Message]) -> Reply:
        refused = results(messages, "pay_invoice")
        if not refused:
            return call("pay_invoice", invoice_id="INV-1", amount="999.00")
        return refused[-1]["error"]  # a ToolRejected reads {"error": why}

    run = await run_agent(
        AGENTS,
        "invoice",
        {"invoice_id": "INV-1"},
        models=[ScriptedModel("overpay", overpay)],
        model_route=["scripted:overpay"],
        approvals={"pay_invoice": ("olga", True)},
    )
    assert run.answer == "invoice INV-1 is for 120.00, not 999.00"
    assert ledger.payments() == []


def test_a_retried_payment_pays_once() -> None:
    first = ledger.pay("run-1/call-1", "INV-1", "120.00")
    again = ledger.pay("run-1/call-1", "INV-1", "120.00")  # e.g. the worker died before replying
    assert first == again and len(ledger.payments("INV-1")) == 1
    with pytest.raises(ledger.Refused, match="INV-1 is paid, not open"):
        ledger.pay("run-2/call-1", "INV-1", "120.00")
