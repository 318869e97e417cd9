"""The onboarding agent: mailbox, laptop, a days-long wait for clearance, a welcome email."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, EmailStr, Field

from durable_agents import (
    ASK_HUMAN,
    SLEEP_UNTIL,
    WAIT_FOR_EVENT,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    Escalation,
    WaitPolicy,
)
from sim.agents.toolbox import create_mailbox, order_laptop, send_email


class NewHire(BaseModel):
    """Input of the onboarding agent."""

    employee_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    full_name: str = Field(min_length=1)
    personal_email: EmailStr
    start_date: date
    ship_to: str = Field(min_length=1)
    laptop_model: str = "standard-14"


SYSTEM_PROMPT = """\
You onboard a new employee. Work through these steps in order, one tool call at a time:
1. create_mailbox for the employee.
2. order_laptop, shipped to the address in the input.
3. wait_for_event for `clearance_granted` (security clearance takes days; wait up to 168 hours).
4. Once cleared, send_email to the employee's personal address: a short, warm welcome that
   names their new mailbox address, their start date and when the laptop arrives.
Then reply with a one-paragraph summary of what was done. Never send the welcome email before
clearance is granted."""

ONBOARDING = AgentSpec(
    name="onboarding",
    version="1.0.0",
    description="Onboard a new hire: mailbox, laptop, security clearance, welcome email.",
    describe_run=lambda d: f"{d['full_name']} ({d['employee_id']}), starts {d['start_date']}",
    system_prompt=SYSTEM_PROMPT,
    # The primary model, then a fallback on another provider (both sims here; in production
    # e.g. "openai:gpt-4.1" then "anthropic:claude-sonnet-4-5").
    model_route=("sim-openai:onboarding", "sim-anthropic:onboarding-backup"),
    tools=(create_mailbox, order_laptop, WAIT_FOR_EVENT, SLEEP_UNTIL, ASK_HUMAN, send_email),
    input_model=NewHire,
    max_turns=12,
    # Clearance that has not come within a week ends the run: HR starts over by hand.
    waits={"clearance_granted": WaitPolicy(max_wait=timedelta(days=7), on_timeout="end_run")},
    approvals=ApprovalPolicy(
        rules=(
            # An email to someone outside the company cannot be unsent: HR reads it first.
            ApprovalRule(
                tool="send_email",
                description="external email to a new hire",
                groups=("hr-managers",),
                expires_after=timedelta(days=3),
                escalation=Escalation(after=timedelta(hours=24), groups=("operators",)),
                # HR may reword it before it goes; where it goes is not theirs to change.
                editable=("subject", "body"),
            ),
        ),
    ),
)
