"""The worker process: runs agent workflows and their activities, drains on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import record_audit
from activities.compaction import summarize
from activities.llm import call_llm
from activities.tools import run_tool
from workers import telemetry
from workers.client import TASK_QUEUE, connect
from workers.inbound_guard import InboundGuard
from workflows.agent import AgentWorkflow

log = logging.getLogger("durable_agents.worker")

WORKFLOWS = [AgentWorkflow]
# The sandbox re-imports, for every run, each module a workflow imports that is not passed
# through; for the agent loop's helpers that cost ~60 ms of CPU per run. They are deterministic
# (no I/O, clock or randomness outside `workflow.*`; the replay tests hold them to it), so they
# are shared; only the workflow definition itself (workflows.agent) is loaded per run.
SHARED = (
    "durable_agents",
    "sim.agents",
    "activities",
    *(
        f"workflows.{name}"
        for name in (
            "chain",
            "compaction",
            "dispatch",
            "failures",
            "gates",
            "history",
            "inbound",
            "messages",
            "models",
            "names",
            "runaway",
            "saga",
            "search",
            "spending",
            "state",
            "subagents",
            "text",
            "turns",
            "waits",
        )
    ),
)
# Also pure libraries that pydantic loads lazily while validating (EmailStr).
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "email_validator", "idna", *SHARED
    )
)
ACTIVITIES: list[Callable[..., Any]] = [call_llm, run_tool, summarize, record_audit]
INTERCEPTORS = (InboundGuard(),)


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
    **options: Any,
) -> Worker:
    """A worker for every agent workflow and activity of this project."""
    options.setdefault("build_id", code_checksum())
    options["interceptors"] = [*INTERCEPTORS, *options.get("interceptors", ())]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        workflow_runner=SANDBOX,
        # In-flight activities get this long to finish before the worker exits.
        graceful_shutdown_timeout=graceful,
        **options,
    )


async def run_worker(
    address: str | None = None,
    namespace: str | None = None,
    task_queue: str = TASK_QUEUE,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then drain in-flight work and exit."""
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
    worker = build_worker(client, task_queue)
    log.info(
        "worker polling task queue %r on %s", task_queue, client.service_client.config.target_host
    )
    async with worker:
        await stop.wait()
        log.info("shutting down: draining in-flight activities")
    if reporter is not None:
        reporter.cancel()
    log.info("worker stopped")
