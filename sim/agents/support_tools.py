"""Contracts of the support systems' tools (CRM, payments, tickets). Implementations:
activities/company.py. Money is `Decimal` with two places, never a float."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field

from durable_agents._spec import Compensation, ToolContract

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


VERIFY_CUSTOMER = ToolContract(
    name="verify_customer",
    description="Check that the customer id and email belong together. Read-only.",
    input_model=VerifyCustomerInput,
    output_model=VerifyCustomerOutput,
    side_effect="read_only",
    timeout=timedelta(seconds=10),
    required_scopes=("crm:read",),
)
CHECK_ELIGIBILITY = ToolContract(
    name="check_refund_eligibility",
    description="Whether an order may be refunded by this amount, and why not. Read-only.",
    input_model=EligibilityInput,
    output_model=EligibilityOutput,
    side_effect="read_only",
    timeout=timedelta(seconds=10),
    required_scopes=("payments:read",),
)
RELEASE_HOLD = ToolContract(
    name="release_hold",
    description="Release a payment hold placed earlier.",
    input_model=ReleaseHoldInput,
    output_model=ReleaseHoldOutput,
    side_effect="reversible",
    timeout=timedelta(seconds=20),
    required_scopes=("payments:write",),
)
PLACE_HOLD = ToolContract(
    name="place_hold",
    description="Hold the refund amount on the order, so it cannot be spent twice.",
    input_model=HoldInput,
    output_model=HoldOutput,
    side_effect="reversible",
    compensation=Compensation(tool="release_hold", arguments=_release),
    timeout=timedelta(seconds=20),
    required_scopes=("payments:write",),
)
ISSUE_REFUND = ToolContract(
    name="issue_refund",
    description="Refund the amount against its hold. Money leaves the company: irreversible.",
    input_model=RefundInput,
    output_model=RefundOutput,
    side_effect="irreversible",
    timeout=timedelta(seconds=30),
    required_scopes=("payments:refund",),
)
UPDATE_TICKET = ToolContract(
    name="update_ticket",
    description="Set the support ticket's status and add a note for the customer's record.",
    input_model=TicketInput,
    output_model=TicketOutput,
    side_effect="reversible",
    compensation=Compensation(tool="update_ticket", arguments=_reopen),
    timeout=timedelta(seconds=20),
    required_scopes=("tickets:write",),
)

SUPPORT_TOOLS = (
    VERIFY_CUSTOMER,
    CHECK_ELIGIBILITY,
    PLACE_HOLD,
    RELEASE_HOLD,
    ISSUE_REFUND,
    UPDATE_TICKET,
)
