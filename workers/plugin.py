"""`DurableAgentsPlugin`: durable agents on a user's own Temporal `Client` and `Worker`.

    worker = Worker(client, task_queue="agents", plugins=[DurableAgentsPlugin([MY_AGENT])])

It adds the agent workflow and its activities (model calls, the tools of the agents given,
compaction, the audit log), the interceptors that keep messages from breaking runs and hand the
worker's catalog to the workflow, and the sandbox pass-through the agent loop needs. A worker
given no identity of its own gets the client's with a short tag of its agents
(workers/identity.py). On a `Client` (or `Replayer`) it also lays the project's data converter
over the client's own (durable_agents._codec.composed): pydantic JSON where the client has the
SDK's default payload converter, and encryption when DURABLE_AGENTS_CODEC_KEYS is set and the
client has no payload codec; the client's own codec, payload converter and failure converter
stay. `agentctl worker` is built on it.

Messages from people carry proofs (README: "Proofs"); `proofs` says whose the worker takes
(by default the OpenID provider of DURABLE_AGENTS_OIDC_URL; with none, it takes no person's
message, saying so).

In-process models are served under `scripted:<name>` routes (`durable_agents.testing`): those
the agent sets ship (`AgentSet(..., models=[ScriptedModel(...)])`) and those given here:

    DurableAgentsPlugin(AGENTS, models=[ScriptedModel("invoice", script)])

Two different models under one name stop it at start, with a CatalogError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkerConfig,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_agents._catalog import AgentSet, Catalog
from durable_agents._spec import AgentSpec
from durable_agents.activities.audit import record_audit
from durable_agents.activities.compaction import Summaries
from durable_agents.activities.llm import LocalModel, ModelCalls
from durable_agents.activities.mcp import MCPConnections, MCPRunner
from durable_agents.activities.proofs import ProofTrust, ProofVerifier, configured_trust
from durable_agents.activities.recovery import recover_conversation
from durable_agents.activities.tools import ToolRunner
from durable_agents.settings import Settings, use
from durable_agents.workers.identity import identity, plugin_name
from durable_agents.workers.inbound_guard import InboundGuard
from durable_agents.workflows.agent import AgentWorkflow
from durable_agents.workflows.catalog import EXTERN

# The sandbox re-imports, for every run, each module a workflow imports that is not passed
# through: for the agent loop's modules that cost ~60 ms of CPU per run, and for the workflow
# definition itself (workflows.agent) another ~20 ms (its source compiled again when bytecode is
# not cached, then `workflow.defn` applied to the class again) -- paid by every run a worker
# starts and by every run it brings back into its cache, which is what wake-ups of thousands of
# waiting runs cost. All of `workflows` is deterministic (no I/O, clock or randomness outside
# `workflow.*`: the import contracts in pyproject.toml forbid the modules that give them, and
# the replay tests hold the code to it) and keeps no state in its modules, so it is shared. A
# subclass of the agent workflow in a user's module is still loaded per run. Also shared: pure
# libraries that pydantic loads lazily while validating (EmailStr), JSON Schema (MCP tools'
# arguments are checked in the workflow), and the modules the catalog's agents come from (their
# input and output models are validated in the workflow; the specs were built outside it).
SHARED = (
    "email_validator",
    "idna",
    "jsonschema",
    "referencing",
    "rpds",
    "attrs",
    "durable_agents",
)


@dataclasses.dataclass(frozen=True)
class _CatalogProvider(Interceptor):
    """Hands the worker's catalog to every agent workflow it runs (and to a replayer's)."""

    catalog: Catalog

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        input.unsafe_extern_functions[EXTERN] = lambda: self.catalog
        return None


def interceptors(catalog: Catalog) -> list[Interceptor]:
    """The plugin's worker interceptors, for a `Replayer` built by hand."""
    return [InboundGuard(), _CatalogProvider(catalog)]


def sandbox(runner: WorkflowRunner | None = None, catalog: Catalog | None = None) -> WorkflowRunner:
    runner = runner or SandboxedWorkflowRunner()
    if not isinstance(runner, SandboxedWorkflowRunner):
        return runner  # the user's choice (e.g. unsandboxed for a debugger)
    plugins = sorted({s.split(":")[0] for s in (catalog.sources.values() if catalog else ()) if s})
    restrictions = runner.restrictions.with_passthrough_modules(*SHARED, *plugins)
    return dataclasses.replace(runner, restrictions=restrictions)


@dataclasses.dataclass(frozen=True)
class _SettingsInForce(Interceptor):
    """Every activity of the worker runs with the plugin's settings (durable_agents.settings
    `current()`): two workers in one process, with settings of their own, never mix them."""

    settings: Settings

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityWithSettings(next, self.settings)


class _ActivityWithSettings(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, settings: Settings) -> None:
        super().__init__(next)
        self._settings = settings

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with use(self._settings):
            return await self.next.execute_activity(input)


class DurableAgentsPlugin(SimplePlugin):
    """The agents given (specs or `AgentSet`s, or a built `Catalog`) on a Temporal worker;
    `models`: in-process models for `scripted:<name>` routes (durable_agents.testing), served
    with those the agent sets ship;
    `workflow`: a subclass of the agent workflow to run in its place (registered under the same
    name; a change of its own goes behind `workflow.patched`)."""

    def __init__(
        self,
        agents: Catalog | AgentSpec | AgentSet | Iterable[AgentSpec | AgentSet],
        *,
        models: Iterable[LocalModel] = (),
        data_converter: bool = True,
        workflow: type[AgentWorkflow] = AgentWorkflow,
        proofs: ProofTrust | None = None,
        settings: Settings | None = None,
    ) -> None:
        # Read once, here: a bad variable stops the worker before it connects.
        self.settings = settings or Settings.from_env()
        if isinstance(agents, AgentSpec | AgentSet):
            agents = [agents]  # a plugin's AGENTS as it is
        self.catalog = agents if isinstance(agents, Catalog) else Catalog.build(agents)
        # MCP sessions are the worker's: opened on first use, closed when the worker stops.
        self.mcp = MCPConnections(self.catalog)
        mcp = MCPRunner(self.mcp)
        served = self.catalog.served_models(models)
        self.proofs = ProofVerifier(proofs or configured_trust(self.settings))
        activities: Sequence[Callable[..., Any]] = (
            self.proofs.verify_proof,
            ModelCalls(served, self.catalog.providers).call_llm,
            ToolRunner(self.catalog).run_tool,
            mcp.list_mcp_tools,
            mcp.call_mcp_tool,
            Summaries(served, self.catalog.providers).summarize,
            record_audit,
            recover_conversation,
        )
        super().__init__(
            plugin_name(self.catalog.agents),  # worker heartbeats list the agents (identity.py)
            data_converter=self._converter if data_converter else None,
            interceptors=[*interceptors(self.catalog), _SettingsInForce(self.settings)],
            activities=activities,
            workflows=[workflow],
            workflow_runner=lambda runner: sandbox(runner, self.catalog),
            run_context=self.mcp.running,
        )

    def _converter(self, existing: DataConverter | None) -> DataConverter:
        from durable_agents._codec import composed

        return composed(existing, self.settings)

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        if not config.get("identity"):
            # The client's identity (`pid@host` by default) and a short tag of the agents, which
            # `agentctl agents` reads from the task queue's pollers (workers/identity.py). One
            # given to the worker is kept as it is.
            base = config["client"].identity if config.get("client") else None
            config["identity"] = identity(self.catalog.agents, base)
        return config
