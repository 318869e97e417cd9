"""The worker process: runs agent workflows and their activities, drains on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from durable_agents._catalog import AgentSet, Catalog
from durable_agents._discovery import discover
from durable_agents._spec import AgentSpec
from workers import telemetry
from workers.client import TASK_QUEUE, connect
from workers.identity import identity
from workers.plugin import DurableAgentsPlugin

log = logging.getLogger("durable_agents.worker")


@lru_cache(maxsize=1)
def code_checksum() -> str:
    """Which code this worker runs: 12 hex characters over the agents, workflows and activities.

    (The SDK's default build id, a 32-character checksum, is written into three history events
    of every step; this is as telling and shorter.)
    """
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in ("durable_agents", "sim/agents", "workflows", "activities"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_worker(
    client: Client,
    task_queue: str = TASK_QUEUE,
    graceful: timedelta = timedelta(seconds=30),
    agents: Catalog | Iterable[AgentSpec | AgentSet] | None = None,
    **options: Any,
) -> Worker:
    """A worker for the agents given (by default: every installed plugin's, `discover()`)."""
    options.setdefault("build_id", code_checksum())
    catalog = agents if agents is not None else discover()
    if isinstance(catalog, Catalog):
        options.setdefault("identity", identity(catalog.agents))
    return Worker(
        client,
        task_queue=task_queue,
        plugins=[DurableAgentsPlugin(catalog, data_converter=False)],
        # In-flight activities get this long to finish before the worker exits.
        graceful_shutdown_timeout=graceful,
        **options,
    )


async def run_worker(
    address: str | None = None,
    namespace: str | None = None,
    task_queue: str = TASK_QUEUE,
    stop: asyncio.Event | None = None,
    plugins: Sequence[str] = (),
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then drain in-flight work and exit."""
    catalog = discover(plugins)  # a plugin that cannot load stops the worker before it starts
    for spec in catalog.agents.values():
        for server in spec.mcp_servers:
            server.check_worker()  # a secret this worker lacks stops it here, in one line
    # A worker may start before its server (compose, systemd): keep trying for a while.
    patience = float(os.environ.get("DURABLE_AGENTS_CONNECT_WAIT", "30"))
    telemetry.setup_tracing("durable-agents-worker")
    runtime = telemetry.metrics_runtime()
    client = await connect(address, namespace, wait_seconds=patience, runtime=runtime)
    reporter = None
    if runtime is not None:
        reporter = asyncio.create_task(telemetry.report_runs_forever(client, runtime.metric_meter))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, task_queue, agents=catalog)
    log.info(
        "worker polling task queue %r on %s for agents %s",
        task_queue,
        client.service_client.config.target_host,
        ", ".join(sorted(catalog.agents)),
    )
    async with worker:
        await stop.wait()
        log.info("shutting down: draining in-flight activities")
    if reporter is not None:
        reporter.cancel()
    log.info("worker stopped")
