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

if TYPE_CHECKING:
    from durable_agents._approvals import ApprovalPolicy, ApprovalRule, Escalation
    from durable_agents._budgets import Budget, ModelTable
    from durable_agents._builtin import ASK_HUMAN, SLEEP_UNTIL, SPAWN_AGENT, WAIT_FOR_EVENT
    from durable_agents._catalog import AgentSet, Catalog
    from durable_agents._child import execute_agent
    from durable_agents._directory import Directory
    from durable_agents._discovery import discover
    from durable_agents._mcp import (
        FromEnv,
        FromFile,
        MCPServer,
        MCPToolTerms,
        Stdio,
        StreamableHTTP,
    )
    from durable_agents._routes import ModelProvider
    from durable_agents._scripted import ScriptedModel
    from durable_agents._spec import (
        AgentSpec,
        Compensation,
        RunawayPolicy,
        SideEffect,
        WaitPolicy,
    )
    from durable_agents._spec import ToolContract as Tool
    from durable_agents._tools import ToolContext, tool
    from durable_agents._vocab.schemas import (
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
    from durable_agents.errors import (
        CatalogError,
        DirectoryError,
        MCPConfigError,
        ToolDefinitionError,
        ToolRejected,
        ToolTransient,
        UnknownAgent,
        UnknownPerson,
        UnknownPrice,
    )
    from durable_agents.workers.plugin import DurableAgentsPlugin

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
    "ModelProvider",
    "ModelTable",
    "OperatorRequest",
    "RunawayPolicy",
    "ScriptedModel",
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


# Public names load on first use (PEP 562): `import durable_agents` and its light modules
# (`durable_agents.errors`) cost next to nothing, so `agentctl --help` starts fast; the plugin
# pulls in the agent loop and the activities only when a worker asks for it.
_PUBLIC: dict[str, tuple[str, str]] = {
    "ASK_HUMAN": ("durable_agents._builtin", "ASK_HUMAN"),
    "AbortRequest": ("durable_agents._vocab.schemas", "AbortRequest"),
    "AgentResult": ("durable_agents._vocab.schemas", "AgentResult"),
    "AgentRun": ("durable_agents._vocab.schemas", "AgentRun"),
    "AgentSet": ("durable_agents._catalog", "AgentSet"),
    "AgentSpec": ("durable_agents._spec", "AgentSpec"),
    "AgentStatus": ("durable_agents._vocab.schemas", "AgentStatus"),
    "ApprovalPolicy": ("durable_agents._approvals", "ApprovalPolicy"),
    "ApprovalRule": ("durable_agents._approvals", "ApprovalRule"),
    "Budget": ("durable_agents._budgets", "Budget"),
    "BudgetOverride": ("durable_agents._vocab.schemas", "BudgetOverride"),
    "Catalog": ("durable_agents._catalog", "Catalog"),
    "CatalogError": ("durable_agents.errors", "CatalogError"),
    "Compensation": ("durable_agents._spec", "Compensation"),
    "Decision": ("durable_agents._vocab.schemas", "Decision"),
    "Directory": ("durable_agents._directory", "Directory"),
    "DirectoryError": ("durable_agents.errors", "DirectoryError"),
    "DurableAgentsPlugin": ("durable_agents.workers.plugin", "DurableAgentsPlugin"),
    "Escalation": ("durable_agents._approvals", "Escalation"),
    "EventSignal": ("durable_agents._vocab.schemas", "EventSignal"),
    "FromEnv": ("durable_agents._mcp", "FromEnv"),
    "FromFile": ("durable_agents._mcp", "FromFile"),
    "Identity": ("durable_agents._vocab.schemas", "Identity"),
    "MCPConfigError": ("durable_agents.errors", "MCPConfigError"),
    "MCPServer": ("durable_agents._mcp", "MCPServer"),
    "MCPToolTerms": ("durable_agents._mcp", "MCPToolTerms"),
    "ModelProvider": ("durable_agents._routes", "ModelProvider"),
    "ModelTable": ("durable_agents._budgets", "ModelTable"),
    "OperatorRequest": ("durable_agents._vocab.schemas", "OperatorRequest"),
    "RunawayPolicy": ("durable_agents._spec", "RunawayPolicy"),
    "ScriptedModel": ("durable_agents._scripted", "ScriptedModel"),
    "SLEEP_UNTIL": ("durable_agents._builtin", "SLEEP_UNTIL"),
    "SPAWN_AGENT": ("durable_agents._builtin", "SPAWN_AGENT"),
    "SideEffect": ("durable_agents._spec", "SideEffect"),
    "Stdio": ("durable_agents._mcp", "Stdio"),
    "StreamableHTTP": ("durable_agents._mcp", "StreamableHTTP"),
    "Tool": ("durable_agents._spec", "ToolContract"),
    "ToolContext": ("durable_agents._tools", "ToolContext"),
    "ToolDefinitionError": ("durable_agents.errors", "ToolDefinitionError"),
    "ToolRejected": ("durable_agents.errors", "ToolRejected"),
    "ToolTransient": ("durable_agents.errors", "ToolTransient"),
    "UnknownAgent": ("durable_agents.errors", "UnknownAgent"),
    "UnknownPerson": ("durable_agents.errors", "UnknownPerson"),
    "UnknownPrice": ("durable_agents.errors", "UnknownPrice"),
    "UserMessage": ("durable_agents._vocab.schemas", "UserMessage"),
    "WAIT_FOR_EVENT": ("durable_agents._builtin", "WAIT_FOR_EVENT"),
    "WaitPolicy": ("durable_agents._spec", "WaitPolicy"),
    "discover": ("durable_agents._discovery", "discover"),
    "execute_agent": ("durable_agents._child", "execute_agent"),
    "tool": ("durable_agents._tools", "tool"),
}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'durable_agents' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _PUBLIC[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
