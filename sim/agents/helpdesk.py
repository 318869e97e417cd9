"""The helpdesk agent: closes a support ticket with the company's tools reached through MCP.

It has no tools of its own: the sim's ticket system serves them as an MCP server at
`<sim url>/mcp` (`sim.mcp_server`), and the worker lists them when a run starts. The agent looks
the ticket up (`lookup_ticket`, readOnlyHint: read-only), then closes it (`close_ticket`,
destructiveHint: irreversible, since the customer is emailed), which a support lead approves
first, and answers with a summary.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from durable_agents import (
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    FromEnv,
    MCPServer,
    MCPToolTerms,
    StreamableHTTP,
)

# The sim's address, as every sim-backed worker knows it; the MCP endpoint is under it.
SIM_MCP_URL = FromEnv("DURABLE_AGENTS_SIM_URL", template="{}/mcp", default="http://127.0.0.1:8787")

# The ticket system checks a token on every change (`sim.mcp_auth`): each call gets its own.
WRITES = MCPToolTerms(scopes=("tickets:write",))
COMPANY = MCPServer(
    name="company",
    transport=StreamableHTTP(url=SIM_MCP_URL),
    audience="tickets",
    tools={"add_ticket_note": WRITES, "close_ticket": WRITES},
)


class TicketToClose(BaseModel):
    """Input of the helpdesk agent."""

    ticket_id: str = Field(min_length=1)
    resolution: str = Field(
        default="", description="What was done, for the customer; empty: the agent writes it."
    )


SYSTEM_PROMPT = """\
You close support tickets, one tool call at a time: lookup_ticket to read the ticket, its
customer and order; if it is not resolved yet, close_ticket with a short, friendly resolution
for the customer (closing emails it to them and cannot be undone, so a support lead approves it
first). If the approval is refused, say so and stop. Finish with one sentence for the record."""

HELPDESK = AgentSpec(
    name="helpdesk",
    version="1.0.0",
    description="Close a support ticket with the ticket system's MCP tools.",
    describe_run=lambda d: f"close ticket {d['ticket_id']}",
    system_prompt=SYSTEM_PROMPT,
    model_route=("sim-openai:helpdesk",),
    tools=(),
    mcp_servers=(COMPANY,),
    input_model=TicketToClose,
    max_turns=6,
    approvals=ApprovalPolicy(
        rules=(
            # close_ticket is an MCP tool: the rule names it as the model sees it.
            ApprovalRule(
                tool="close_ticket",
                description="closing a ticket emails the customer",
                groups=("support-leads",),
                expires_after=timedelta(days=2),
            ),
        ),
    ),
)
