"""The support systems' tools of the sim world (CRM, payments, tickets), each one object.
Money is `Decimal` with two places, never a float."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field

from durable_agents import Compensation, ToolContext, tool
from sim.agents._http import post

Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
TicketStatus = Literal["open", "refund_pending", "resolved", "refund_rejected"]


class VerifyCustomerInput(BaseModel):
    customer_id: str = Field(min_length=1)
    email: EmailStr


class VerifyCustomerOutput(BaseModel):
    customer_id: str
    verified: bool
    name: str | None = None


class EligibilityInput(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Money


class EligibilityOutput(BaseModel):
    order_id: str
    eligible: bool
    reason: str
    max_refundable: Decimal


class HoldInput(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Money


class HoldOutput(BaseModel):
    hold_id: str
    order_id: str
    amount: Decimal
    status: Literal["held"]


class ReleaseHoldInput(BaseModel):
    hold_id: str = Field(min_length=1)


class ReleaseHoldOutput(BaseModel):
    hold_id: str
    status: Literal["released"]


class RefundInput(BaseModel):
    order_id: str = Field(min_length=1)
    amount: Money
    hold_id: str = Field(min_length=1)


class RefundOutput(BaseModel):
    refund_id: str
    order_id: str
    amount: Decimal
    status: Literal["refunded"]


class TicketInput(BaseModel):
    ticket_id: str = Field(min_length=1)
    status: TicketStatus
    note: str = Field(default="", max_length=5000)


class TicketOutput(BaseModel):
    ticket_id: str
    status: TicketStatus
    note_id: str


def _release(args: Mapping[str, Any], out: Mapping[str, Any], why: str) -> dict[str, Any] | None:
    return {"hold_id": out["hold_id"]}


def _reopen(args: Mapping[str, Any], out: Mapping[str, Any], why: str) -> dict[str, Any] | None:
    if args["status"] != "refund_pending":
        return None  # only the "refund pending" mark promises something that must be taken back
    return {
        "ticket_id": args["ticket_id"],
        "status": "refund_rejected",
        "note": f"Refund not issued: {why}",
    }


@tool(side_effect="read_only", timeout=timedelta(seconds=10), scopes=("crm:read",))
async def verify_customer(args: VerifyCustomerInput, ctx: ToolContext) -> VerifyCustomerOutput:
    """Check that the customer id and email belong together. Read-only."""
    return await post("/crm/verify", args, ctx)


@tool(
    name="check_refund_eligibility",
    side_effect="read_only",
    timeout=timedelta(seconds=10),
    scopes=("payments:read",),
)
async def check_eligibility(args: EligibilityInput, ctx: ToolContext) -> EligibilityOutput:
    """Whether an order may be refunded by this amount, and why not. Read-only."""
    return await post("/payments/eligibility", args, ctx)


@tool(
    side_effect="reversible",
    timeout=timedelta(seconds=20),
    scopes=("payments:write",),
    audience="payments",
)
async def release_hold(args: ReleaseHoldInput, ctx: ToolContext) -> ReleaseHoldOutput:
    """Release a payment hold placed earlier."""
    return await post("/payments/holds/release", args, ctx)


@tool(
    side_effect="reversible",
    compensation=Compensation(tool=release_hold, arguments=_release),
    timeout=timedelta(seconds=20),
    scopes=("payments:write",),
    audience="payments",
)
async def place_hold(args: HoldInput, ctx: ToolContext) -> HoldOutput:
    """Hold the refund amount on the order, so it cannot be spent twice."""
    return await post("/payments/holds", args, ctx)


@tool(
    side_effect="irreversible",
    timeout=timedelta(seconds=30),
    scopes=("payments:refund",),
    audience="payments",
)
async def issue_refund(args: RefundInput, ctx: ToolContext) -> RefundOutput:
    """Refund the amount against its hold. Money leaves the company: irreversible."""
    return await post("/payments/refunds", args, ctx)


@tool(
    side_effect="reversible",
    compensation=Compensation(tool="update_ticket", arguments=_reopen),
    timeout=timedelta(seconds=20),
    scopes=("tickets:write",),
    audience="tickets",
)
async def update_ticket(args: TicketInput, ctx: ToolContext) -> TicketOutput:
    """Set the support ticket's status and add a note for the customer's record."""
    return await post("/tickets/update", args, ctx)
