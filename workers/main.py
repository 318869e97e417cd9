"""The worker process: runs agent workflows and their activities, drains on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import signal
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from durable_agents._catalog import AgentSet, Catalog
from durable_agents._discovery import discover
from durable_agents._spec import AgentSpec
from durable_agents.activities.llm import LocalModel
from durable_agents.settings import Settings, current
from durable_agents.workers import telemetry
from durable_agents.workers.check import CheckReport
from durable_agents.workers.client import connect
from durable_agents.workers.plugin import DurableAgentsPlugin
from durable_agents.workflows.agent import AgentWorkflow

log = logging.getLogger("durable_agents.worker")


# How many runs a worker keeps in memory between their tasks (Settings.max_cached_workflows).
MAX_CACHED_WORKFLOWS = "DURABLE_AGENTS_MAX_CACHED_WORKFLOWS"

# What decides behaviour: code and the configuration files shipped beside it (directories,
# model tables).
BEHAVIOUR = ("*.py", "*.toml")


def _plugin_roots(catalog: Catalog | None) -> list[Path]:
    """The folders of the plugins the catalog's agents come from (`module` or `module:attr`)."""
    roots = []
    for source in sorted(set(catalog.sources.values()) if catalog else ()):
        module = source.split(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin).resolve()
        roots.append(origin.parent if origin.name == "__init__.py" else origin)
    return roots


def code_checksum(catalog: Catalog | None = None, settings: Settings | None = None) -> str:
    """Which code this worker runs: 12 hex characters over what decides behaviour: the platform
    (durable_agents, workflows, activities, workers) and every plugin the agents come from,
    their code and configuration files. Installed libraries are not in it: in production, set
    `DURABLE_AGENTS_BUILD_ID` (e.g. the image's tag), which overrides it.

    (The SDK's default build id, a 32-character checksum, is written into three history events
    of every step; this is as telling and shorter.)
    """
    named = (settings or current()).build_id
    if named:
        return named
    root = Path(__file__).resolve().parent.parent
    # The platform's folders (durable_agents/ reaches them by symlinks, not followed here).
    roots = [root / p for p in ("durable_agents", "workflows", "activities", "workers")]
    return _checksum(tuple(sorted({*roots, *_plugin_roots(catalog)})))


@lru_cache(maxsize=8)
def _checksum(roots: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for top in roots:
        files = [top] if top.is_file() else sorted(f for g in BEHAVIOUR for f in top.rglob(g))
        for path in files:
            if "__pycache__" in path.parts:
                continue
            name = path.relative_to(top.parent).as_posix()
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def build_worker(
    client: Client,
    task_queue: str | None = None,
    graceful: timedelta = timedelta(seconds=30),
    agents: Catalog | Iterable[AgentSpec | AgentSet] | None = None,
    models: Iterable[LocalModel] = (),
    workflow: type[AgentWorkflow] = AgentWorkflow,
    settings: Settings | None = None,
    **options: Any,
) -> Worker:
    """A worker for the agents given (by default: every installed plugin's, `discover()`),
    serving on `scripted:<name>` routes the in-process models their agent sets ship and
    `models`."""
    settings = settings or Settings.from_env()
    catalog = agents if agents is not None else discover(settings=settings)
    build = code_checksum(catalog if isinstance(catalog, Catalog) else None, settings)
    task_queue = task_queue or settings.task_queue
    deployment = settings.deployment
    if deployment:
        # Worker Deployment Versioning: this worker is version `deployment:build`; runs stay on
        # the version that started them and upgrade at turn boundaries (workflows/agent.py).
        options.setdefault(
            "deployment_config",
            WorkerDeploymentConfig(
                version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build),
                use_worker_versioning=True,
                default_versioning_behavior=VersioningBehavior.PINNED,
            ),
        )
    else:
        options.setdefault("build_id", build)
    # The worker's identity: the client's with a short tag of its agents, set by the plugin
    # (workers/identity.py); it is in every task event of history, so it names no agents.
    # A run's next task goes to the worker that has it cached for this long, then to any: how
    # long a run held by a killed worker waits (the SDK's default is 10 s).
    sticky = timedelta(seconds=settings.sticky_timeout_s)
    options.setdefault("sticky_queue_schedule_to_start_timeout", sticky)
    if settings.max_cached_workflows is not None:
        # Runs kept in memory between their tasks (the SDK's default: 1,000). A waiting run
        # out of the cache costs no worker memory; its next task replays its history.
        options.setdefault("max_cached_workflows", settings.max_cached_workflows)
    return Worker(
        client,
        task_queue=task_queue,
        plugins=[
            DurableAgentsPlugin(
                catalog,
                models=models,
                data_converter=False,
                workflow=workflow,
                settings=settings,
            )
        ],
        # In-flight activities get this long to finish before the worker exits.
        graceful_shutdown_timeout=graceful,
        **options,
    )


async def join_deployment(
    client: Client, catalog: Catalog | None = None, settings: Settings | None = None
) -> str | None:
    """With DURABLE_AGENTS_DEPLOYMENT set: the deployment's current version, after making this
    worker's version current if the deployment has none yet (its first worker bootstraps it;
    later versions are promoted by an operator: `agentctl deploy promote`)."""
    from temporalio.api.workflowservice.v1 import (
        DescribeWorkerDeploymentRequest,
        SetWorkerDeploymentCurrentVersionRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode

    settings = settings or current()
    deployment = settings.deployment
    if not deployment:
        return None
    build = code_checksum(catalog, settings)
    try:
        found = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
        version = found.worker_deployment_info.routing_config.current_deployment_version
        if version.build_id:
            return version.build_id
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment,
            build_id=build,
            identity="durable-agents worker (first of its deployment)",
            allow_no_pollers=True,
        )
    )
    log.info("deployment %r had no current version: %s is current now", deployment, build)
    return build


async def check_worker(
    address: str | None = None,
    task_queue: str | None = None,
    plugins: Sequence[str] = (),
    settings: Settings | None = None,
    workflow: type[AgentWorkflow] = AgentWorkflow,
    catalog: Catalog | None = None,
) -> CheckReport:
    """`agentctl worker --check`: this build's check (workers/check.py), under the version id
    its workers serve as."""
    from durable_agents.workers.check import check_build

    settings = settings or Settings.from_env()
    if task_queue:
        settings = settings.model_copy(update={"task_queue": task_queue})
    catalog = catalog or discover(plugins, settings=settings)
    client = await connect(address, wait_seconds=settings.connect_wait, settings=settings)
    build = code_checksum(catalog, settings)
    return await check_build(client, catalog, settings, build, workflow)


async def run_worker(
    address: str | None = None,
    namespace: str | None = None,
    task_queue: str | None = None,
    stop: asyncio.Event | None = None,
    plugins: Sequence[str] = (),
    settings: Settings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then drain in-flight work and exit."""
    # Read once, here: a variable that does not parse stops the worker in one line.
    settings = settings or Settings.from_env()
    task_queue = task_queue or settings.task_queue
    catalog = discover(plugins, settings=settings)  # a plugin that cannot load stops it here
    for spec in catalog.agents.values():
        for server in spec.mcp_servers:
            server.check_worker()  # a secret this worker lacks stops it here, in one line
    # A worker may start before its server (compose, systemd): keep trying for a while.
    patience = settings.connect_wait
    telemetry.setup_tracing("durable-agents-worker", settings=settings)
    runtime = telemetry.metrics_runtime(settings=settings)
    client = await connect(
        address, namespace, wait_seconds=patience, runtime=runtime, settings=settings
    )
    reporter = None
    if runtime is not None:
        reporter = asyncio.create_task(telemetry.report_runs_forever(client, runtime.metric_meter))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, task_queue, agents=catalog, settings=settings)
    version = await join_deployment(client, catalog, settings)
    if version is not None and version != code_checksum(catalog, settings):
        log.info(
            "this worker's version is not current (%s is): it serves runs pinned to it", version
        )
    log.info(
        "worker polling task queue %r on %s for agents %s",
        task_queue,
        client.service_client.config.target_host,
        ", ".join(sorted(catalog.agents)),
    )
    if catalog.local_models:  # the plugins' own models, served here (build_worker's plugin)
        log.info(
            "serving in-process models %s",
            ", ".join(f"scripted:{name}" for name in sorted(catalog.local_models)),
        )
    async with worker:
        await stop.wait()
        log.info("shutting down: draining in-flight activities")
    if reporter is not None:
        reporter.cancel()
    log.info("worker stopped")
