"""The support-refund agent: a saga with a supervisor's approval for large refunds.

Verify the customer, check eligibility, mark the ticket, hold the money, refund it (a support
lead approves refunds over 100.00), resolve the ticket. If the refund is rejected or a step fails
for good, the hold is released and the ticket noted, newest step first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, EmailStr, Field

from durable_agents import ASK_HUMAN, AgentSpec, ApprovalPolicy, ApprovalRule, Escalation
from sim.agents.support_tools import (
    Money,
    check_eligibility,
    issue_refund,
    place_hold,
    update_ticket,
    verify_customer,
)

LIMIT = Decimal("100.00")


class RefundRequest(BaseModel):
    """Input of the refund agent."""

    customer_id: str = Field(min_length=1)
    email: EmailStr
    order_id: str = Field(min_length=1)
    ticket_id: str = Field(min_length=1)
    amount: Money
    reason: str = ""


def over_limit(args: Mapping[str, Any]) -> bool:
    return Decimal(str(args["amount"])) > LIMIT


SYSTEM_PROMPT = f"""\
You handle a customer's refund request, one tool call at a time: verify_customer; then
check_refund_eligibility; if the input gives no reason, ask_human for it; update_ticket to
refund_pending; place_hold; issue_refund against the hold; update_ticket to resolved. Refunds over
{LIMIT} wait for a support lead's approval. If a refund is rejected, say so and stop: the hold
and ticket are taken care of for you. Finish with a short summary for the ticket."""

REFUND = AgentSpec(
    name="refund",
    version="1.0.0",
    description="Refund a customer's order, with approval over the limit, as a saga.",
    describe_run=lambda d: f"{d['amount']} on order {d['order_id']} (ticket {d['ticket_id']})",
    system_prompt=SYSTEM_PROMPT,
    model_route=("sim-openai:refund",),
    tools=(verify_customer, check_eligibility, ASK_HUMAN, update_ticket, place_hold, issue_refund),
    input_model=RefundRequest,
    max_turns=14,
    saga=True,
    approvals=ApprovalPolicy(
        rules=(
            ApprovalRule(
                tool="issue_refund",
                description=f"refunds over {LIMIT} need a support lead",
                when=over_limit,
                groups=("support-leads",),
                expires_after=timedelta(days=3),
                escalation=Escalation(after=timedelta(hours=24), groups=("support-managers",)),
                # Money: an expired request is not a "no"; an operator looks at it.
                on_expiry="park",
            ),
            ApprovalRule(tool="issue_refund", description=f"refunds up to {LIMIT}", needed=False),
        ),
    ),
)
