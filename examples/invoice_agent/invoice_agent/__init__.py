"""An agent that pays supplier invoices, written against `durable_agents` only.

Workers and `agentctl` find `AGENTS` through the entry point in pyproject.toml (group
`durable_agents.agents`), or with `agentctl worker --plugin invoice_agent`. The model route is
`INVOICE_AGENT_MODEL` (default `sim-openai:invoice`, the embedded sim's script for this agent);
`agentctl run invoice --model openai:gpt-4.1 …` picks another one per run.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from durable_agents import (
    AgentSet,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    Budget,
    Directory,
    RunawayPolicy,
)
from invoice_agent.tools import lookup_invoice, pay_invoice

APPROVERS = "accounts-payable"  # a group of this package's directory.toml


class InvoiceRun(BaseModel):
    """What a run is given."""

    invoice_id: str


INVOICE = AgentSpec(
    name="invoice",
    version="1.0.0",
    description="Pays an open supplier invoice once accounts payable approves.",
    system_prompt=(
        "You pay supplier invoices. Look the invoice up with lookup_invoice. If it is open, pay "
        "exactly its amount with pay_invoice. Then say in one line what happened."
    ),
    model_route=(os.environ.get("INVOICE_AGENT_MODEL", "sim-openai:invoice"),),
    tools=(lookup_invoice, pay_invoice),
    input_model=InvoiceRun,
    approvals=ApprovalPolicy(
        rules=(
            ApprovalRule(
                tool="pay_invoice", description="money leaves the company", groups=(APPROVERS,)
            ),
        ),
        default_groups=(APPROVERS,),
    ),
    # Who is asked when a run overspends or goes round in circles (by default `operators`).
    budget=Budget(approvers=(APPROVERS,)),
    runaway=RunawayPolicy(groups=(APPROVERS,)),
    describe_run=lambda data: f"pay {data['invoice_id']}",
)

AGENTS = AgentSet(
    (INVOICE,),
    source="invoice_agent",
    directory=Directory.load(Path(__file__).parent / "directory.toml"),
)
