"""The catalog: the agents and tools one worker (or one CLI) knows, checked once at start-up.

A catalog is built from what plugins hand over (agent specs, or `AgentSet`s of them) and
refuses, in one line naming what to fix, anything that would otherwise fail in the middle of a
run: two agents or two different tools under one name, a tool with no code, a compensation
naming a tool that is nowhere, two in-process models under one name. The worker hands its
catalog to the workflow (workers/plugin.py); nothing is looked up in a module-level registry.

A plugin may ship in-process models with its agents (`AgentSet(..., models=[ScriptedModel(...)])`):
every worker that loads the set serves them on `scripted:<name>` routes, so its agents run with
no API key and no model server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from durable_agents._approvals import ApprovalPolicy
from durable_agents._budgets import SHIPPED_MODELS, ModelTable
from durable_agents._directory import Directory
from durable_agents._routes import BUILTIN, PROVIDER_NAME, ModelProvider, parse_route
from durable_agents._spec import AgentSpec, ToolContract
from durable_agents._vocab.schemas import LLMReply, LLMRequest
from durable_agents.errors import (
    CatalogError,
    DirectoryError,
    InvalidRoute,
    MCPConfigError,
    UnknownAgent,
    UnknownPrice,
)


@runtime_checkable
class InProcessModel(Protocol):
    """A model a worker serves in its own process on the route `scripted:<name>` (a
    `ScriptedModel` of durable_agents.testing is one)."""

    @property
    def name(self) -> str: ...

    async def complete(self, request: LLMRequest) -> LLMReply:
        """The reply to `request` (whose conversation is content), with its usage."""
        ...


@dataclass(frozen=True)
class AgentSet:
    """What a plugin hands over: its agents, and which of them listings leave out (probes,
    benchmarks) unless asked."""

    agents: tuple[AgentSpec, ...]
    """The agents, each with its tools."""
    hidden: tuple[str, ...] = ()
    """Names of agents that `agentctl agents` lists only with `--all`."""
    source: str = ""
    """Where it came from (a plugin's module), for error messages."""
    directory: Directory | None = None
    """People and approver groups these agents need (merged with the other plugins')."""
    models: ModelTable | Iterable[ModelTable | InProcessModel] | None = None
    """The models these agents need beyond the shipped ones: a table of prices and context
    windows (later plugins win), in-process models that every worker loading the set serves on
    `scripted:<name>` routes (`ScriptedModel`), or a list of both."""
    providers: Mapping[str, ModelProvider] | None = None
    """Model servers these agents reach by name (routes `<name>:<model>`), e.g. a company's
    gateway: `{"gateway": ModelProvider(wire="openai", base_url="http://…/v1")}`. Their URLs
    must be allowed model endpoints (DURABLE_AGENTS_MODEL_ENDPOINTS; loopback by default); a
    worker's own DURABLE_AGENTS_MODEL_PROVIDERS override them."""

    def __post_init__(self) -> None:
        if self.models is None or isinstance(self.models, ModelTable):
            return
        if isinstance(self.models, InProcessModel) or not isinstance(self.models, Iterable):
            items: tuple[object, ...] = (self.models,)
        else:
            items = tuple(self.models)
        for item in items:
            if not isinstance(item, ModelTable | InProcessModel):
                raise CatalogError(
                    f"{self.source or 'an AgentSet'}: models= takes a ModelTable and in-process "
                    f"models (ScriptedModel), not {type(item).__name__}"
                )
        object.__setattr__(self, "models", items)  # frozen: a tuple, never a list shared

    @property
    def model_table(self) -> ModelTable | None:
        """The set's prices and context windows (its tables merged, later ones winning)."""
        if self.models is None or isinstance(self.models, ModelTable):
            return self.models
        table = None
        for item in self.models:
            if isinstance(item, ModelTable):
                table = item if table is None else table.merged(item)
        return table

    @property
    def local_models(self) -> tuple[InProcessModel, ...]:
        """The set's in-process models, served on `scripted:<name>` routes."""
        if self.models is None or isinstance(self.models, ModelTable):
            return ()
        return tuple(m for m in self.models if not isinstance(m, ModelTable))


@dataclass(frozen=True)
class Catalog:
    """Every agent and activity-run tool a process can serve, by name."""

    agents: Mapping[str, AgentSpec] = field(default_factory=dict)
    tools: Mapping[str, ToolContract] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    sources: Mapping[str, str] = field(default_factory=dict)  # agent name -> plugin
    directory: Directory = field(default_factory=Directory)
    models: ModelTable = SHIPPED_MODELS
    local_models: Mapping[str, InProcessModel] = field(default_factory=dict)
    """The in-process models the sets ship, by name (served on `scripted:<name>` routes)."""
    model_sources: Mapping[str, str] = field(default_factory=dict)  # model name -> plugin
    providers: Mapping[str, ModelProvider] = field(default_factory=dict)
    """Model servers the sets name (routes `<name>:<model>`)."""

    @classmethod
    def build(cls, sets: Iterable[AgentSet | AgentSpec]) -> Catalog:
        agents: dict[str, AgentSpec] = {}
        sources: dict[str, str] = {}
        hidden: set[str] = set()
        directory = Directory()
        models = SHIPPED_MODELS
        local: dict[str, InProcessModel] = {}
        local_sources: dict[str, str] = {}
        providers: dict[str, tuple[ModelProvider, str]] = {}
        for item in sets:
            group = item if isinstance(item, AgentSet) else AgentSet((item,))
            try:
                if group.directory is not None:
                    directory = directory.merged(group.directory)
            except DirectoryError as exc:
                raise CatalogError(f"{group.source or 'a plugin'}: {exc}") from None
            table = group.model_table
            if table is not None:
                models = models.merged(table)
            for model in group.local_models:
                _add_model(local, local_sources, model, group.source or "?")
            for name, provider in (group.providers or {}).items():
                _add_provider(providers, name, provider, group.source or "?")
            for spec in group.agents:
                if spec.name in agents and agents[spec.name] is not spec:
                    raise CatalogError(
                        f"two agents are named {spec.name!r} (from {sources[spec.name] or '?'} "
                        f"and {group.source or '?'}): rename one"
                    )
                agents[spec.name] = spec
                sources[spec.name] = group.source
            hidden.update(group.hidden)
        tools = _tools(agents.values())
        unknown = sorted(hidden - set(agents))
        if unknown:
            raise CatalogError(f"hidden agents {', '.join(unknown)} are not among the agents")
        for spec in agents.values():
            _check(spec, directory, models)
        return cls(
            agents,
            tools,
            frozenset(hidden),
            sources,
            directory,
            models,
            local,
            local_sources,
            {name: provider for name, (provider, _) in providers.items()},
        )

    def served_models(
        self, extra: Iterable[InProcessModel] = (), source: str = "the plugin's models="
    ) -> list[InProcessModel]:
        """The in-process models a worker serves: the sets' and `extra` (e.g. the plugin's
        `models=`); two different ones under one name are a CatalogError."""
        local, where = dict(self.local_models), dict(self.model_sources)
        for model in extra:
            _add_model(local, where, model, source)
        return list(local.values())

    def agent(self, name: str) -> AgentSpec:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(set(self.agents) - self.hidden)) or "none"
            raise UnknownAgent(f"unknown agent {name!r}; known agents: {known}") from None

    def tool(self, name: str) -> ToolContract | None:
        return self.tools.get(name)

    def scopes(self) -> set[str]:
        """Every scope some tool requires: what a grant may name."""
        return {s for t in self.tools.values() for s in t.required_scopes}

    def visible(self) -> list[AgentSpec]:
        return [s for n, s in sorted(self.agents.items()) if n not in self.hidden]


def _add_model(
    models: dict[str, InProcessModel], sources: dict[str, str], model: InProcessModel, source: str
) -> None:
    known = models.get(model.name)
    if known is not None and known is not model:
        raise CatalogError(
            f"two in-process models are named {model.name!r} (from {sources[model.name]} and "
            f"{source}): rename one (an agent reaches it as scripted:{model.name})"
        )
    models[model.name] = model
    sources[model.name] = source


def _add_provider(
    providers: dict[str, tuple[ModelProvider, str]],
    name: str,
    provider: ModelProvider,
    source: str,
) -> None:
    named = PROVIDER_NAME.fullmatch(name) and name not in BUILTIN
    if not named or not isinstance(provider, ModelProvider):
        raise CatalogError(
            f"{source}: providers= maps a name (lowercase letters, digits, '-'; not one of "
            f"{', '.join(BUILTIN)}) to a ModelProvider, not {name!r}: {provider!r}"
        )
    known = providers.get(name)
    if known is not None and known[0] != provider:
        raise CatalogError(
            f"two model providers are named {name!r} (from {known[1]} and {source}), at "
            f"{known[0].base_url} and {provider.base_url}: rename one"
        )
    providers[name] = (provider, source)


def _tools(specs: Iterable[AgentSpec]) -> dict[str, ToolContract]:
    """The activity-run tools of these agents and of their compensations, one per name."""
    tools: dict[str, ToolContract] = {}

    def add(tool: ToolContract, where: str) -> None:
        if tool.durable:
            return
        if tool.implementation is None:
            raise CatalogError(
                f"{where}: tool {tool.name!r} has no code: define it with @durable_agents.tool"
            )
        known = tools.get(tool.name)
        if known is not None and known.implementation is not tool.implementation:
            raise CatalogError(f"{where}: two different tools are named {tool.name!r}: rename one")
        tools.setdefault(tool.name, tool)

    for spec in specs:
        for tool in spec.tools:
            add(tool, f"agent {spec.name!r}")
            undo = tool.compensation
            if undo is not None and isinstance(undo.tool, ToolContract):
                add(undo.tool, f"agent {spec.name!r}, compensation of {tool.name!r}")
    for spec in specs:
        for tool in spec.tools:
            undo = tool.compensation
            if undo is not None and undo.tool_name not in tools:
                raise CatalogError(
                    f"agent {spec.name!r}: the compensation of {tool.name!r} names tool "
                    f"{undo.tool_name!r}, which no agent has: pass the tool object"
                )
    return tools


def _check(spec: AgentSpec, directory: Directory, models: ModelTable) -> None:
    """What would otherwise fail in the middle of a run: a group nobody is in, a route that
    does not parse, a cost limit on a model without a price."""
    policy = spec.approvals or ApprovalPolicy()
    groups = {
        *policy.default_groups,
        *spec.budget.approvers,
        *spec.runaway.groups,
        *(g for r in policy.rules for g in r.groups),
        *(g for r in policy.rules if r.escalation for g in r.escalation.groups),
    }
    for group in sorted(groups):
        if not directory.knows_group(group):
            raise CatalogError(
                f"agent {spec.name!r} names approver group {group!r}, which no directory has: "
                "add it to the plugin's directory file"
            )
    tools = {t.name for t in spec.tools}
    servers = [s.name for s in spec.mcp_servers]
    if len(set(servers)) != len(servers):
        raise CatalogError(f"agent {spec.name!r}: two MCP servers share a name ({servers})")
    for server in spec.mcp_servers:
        try:
            server.check()
        except MCPConfigError as exc:
            raise CatalogError(f"agent {spec.name!r}: {exc}") from None
        tools |= set(server.rename.values())  # the others are known when the run lists them
    for rule in policy.rules:
        if spec.mcp_servers and rule.tool not in tools:
            continue  # may name an MCP tool: checked against the list the run records
        if rule.tool not in tools and rule.tool != "continue_run":
            raise CatalogError(
                f"agent {spec.name!r}: an approval rule names tool {rule.tool!r}, "
                "which the agent does not have"
            )
        tool = spec.tool(rule.tool)
        if tool is not None and isinstance(rule.editable, tuple):
            fields = set(tool.input_model.model_fields)
            unknown = [name for name in rule.editable if name not in fields]
            if unknown:
                raise CatalogError(
                    f"agent {spec.name!r}: the approval rule for {rule.tool!r} lets a person "
                    f"edit {', '.join(unknown)}, which {rule.tool} does not take (it takes "
                    f"{', '.join(sorted(fields))})"
                )
    try:
        route = [parse_route(r).model for r in spec.model_route]
    except InvalidRoute as exc:
        raise CatalogError(f"agent {spec.name!r}: {exc}") from None
    try:
        spec.budget.check_priced(route, models)
    except UnknownPrice as exc:
        raise CatalogError(f"agent {spec.name!r}: {exc}") from None
