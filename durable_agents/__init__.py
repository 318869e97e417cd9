"""durable-agents: AI agents whose reasoning loops are Temporal workflows.

Write an agent in your own package against this module only:

    from durable_agents import AgentSpec, ToolContext, tool

    @tool(side_effect="read_only")
    async def lookup_invoice(args: LookupInput, ctx: ToolContext) -> Invoice:
        \"\"\"Look an invoice up by its id.\"\"\"

    INVOICE = AgentSpec(name="invoice", ..., tools=(lookup_invoice,))
    AGENTS = AgentSet((INVOICE,))

and serve it with `agentctl worker --plugin my_package` (or an entry point in the group
`durable_agents.agents`), or on your own worker with `DurableAgentsPlugin(AGENTS)`.
Everything here is public; modules whose names start with `_` are private and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable_agents._approvals import ApprovalPolicy, ApprovalRule, Escalation
from durable_agents._budgets import Budget, ModelTable, UnknownPrice
from durable_agents._builtin import ASK_HUMAN, SLEEP_UNTIL, SPAWN_AGENT, WAIT_FOR_EVENT
from durable_agents._catalog import AgentSet, Catalog, CatalogError, UnknownAgent
from durable_agents._child import execute_agent
from durable_agents._directory import Directory, DirectoryError, UnknownPerson
from durable_agents._discovery import discover
from durable_agents._mcp import (
    FromEnv,
    FromFile,
    MCPConfigError,
    MCPServer,
    MCPToolTerms,
    Stdio,
    StreamableHTTP,
)
from durable_agents._spec import (
    AgentSpec,
    Compensation,
    RunawayPolicy,
    SideEffect,
    WaitPolicy,
)
from durable_agents._spec import ToolContract as Tool
from durable_agents._tools import (
    ToolContext,
    ToolDefinitionError,
    ToolRejected,
    ToolTransient,
    tool,
)
from durable_agents._vocab.models import (
    AbortRequest,
    AgentResult,
    AgentRun,
    AgentStatus,
    BudgetOverride,
    Decision,
    EventSignal,
    Identity,
    OperatorRequest,
    UserMessage,
)

if TYPE_CHECKING:
    from workers.plugin import DurableAgentsPlugin

__version__ = "0.3.0"

__all__ = [
    "ASK_HUMAN",
    "SLEEP_UNTIL",
    "SPAWN_AGENT",
    "WAIT_FOR_EVENT",
    "AbortRequest",
    "AgentResult",
    "AgentRun",
    "AgentSet",
    "AgentSpec",
    "AgentStatus",
    "ApprovalPolicy",
    "ApprovalRule",
    "Budget",
    "BudgetOverride",
    "Catalog",
    "CatalogError",
    "Compensation",
    "Decision",
    "Directory",
    "DirectoryError",
    "DurableAgentsPlugin",
    "Escalation",
    "EventSignal",
    "FromEnv",
    "FromFile",
    "Identity",
    "MCPConfigError",
    "MCPServer",
    "MCPToolTerms",
    "ModelTable",
    "OperatorRequest",
    "RunawayPolicy",
    "SideEffect",
    "Stdio",
    "StreamableHTTP",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "ToolRejected",
    "ToolTransient",
    "UnknownAgent",
    "UnknownPerson",
    "UnknownPrice",
    "UserMessage",
    "WaitPolicy",
    "__version__",
    "discover",
    "execute_agent",
    "tool",
]


def __getattr__(name: str) -> Any:
    # The plugin pulls in the agent loop and the activities: loaded on first use only, so that
    # importing the specs' vocabulary (as the workflow itself does) stays light and acyclic.
    if name == "DurableAgentsPlugin":
        from workers.plugin import DurableAgentsPlugin

        return DurableAgentsPlugin
    raise AttributeError(f"module 'durable_agents' has no attribute {name!r}")
