"""The agent's tools: one reads, one pays. Each is an async function made a tool by `@tool`;
its input and output are the pydantic models in its annotations, its docstring is what the
model reads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel

from durable_agents import ToolContext, ToolRejected, tool
from invoice_agent import ledger


class LookupInput(BaseModel):
    invoice_id: str


class Invoice(BaseModel):
    invoice_id: str
    vendor: str = ""
    amount: str = "0"
    status: str  # open, paid, or not_found


class PayInput(BaseModel):
    invoice_id: str
    amount: str


class Payment(BaseModel):
    invoice_id: str
    amount: str
    status: str


@tool(side_effect="read_only", scopes=("invoices:read",))
async def lookup_invoice(args: LookupInput, ctx: ToolContext) -> Invoice:
    """Look an invoice up by its id: vendor, amount and status (open, paid or not_found)."""
    found = await asyncio.to_thread(ledger.find, args.invoice_id)
    if found is None:
        return Invoice(invoice_id=args.invoice_id, status="not_found")
    return Invoice.model_validate(found.model_dump())


@tool(side_effect="irreversible", scopes=("invoices:pay",), timeout=timedelta(seconds=10))
async def pay_invoice(args: PayInput, ctx: ToolContext) -> Payment:
    """Pay an open invoice its exact amount. Money leaves the company: a person approves first."""
    try:
        # The idempotency key is `<run id>/<tool call id>`: a retried call pays once.
        paid = await asyncio.to_thread(
            ledger.pay, ctx.idempotency_key, args.invoice_id, args.amount
        )
    except ledger.Refused as exc:
        raise ToolRejected(str(exc)) from None  # not retried; the model reads why
    return Payment(invoice_id=paid.invoice_id, amount=paid.amount, status="paid")
