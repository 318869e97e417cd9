"""Traces, metrics and logs: what happened, for whom, how long it took and what it cost.

- Traces: OpenTelemetry through Temporal's TracingInterceptor on the client (workers inherit it),
  so `agentctl run` → the workflow → every activity is one trace; `call_llm` and `run_tool` add
  GenAI spans (activities/observe.py). `DURABLE_AGENTS_TRACING`: `console` (spans to stderr; the
  worker's default), `otlp` (the `otlp` extra; OTEL_EXPORTER_OTLP_ENDPOINT), or `off`. The CLI
  starts the trace but exports only when the variable says so.
- Metrics: the worker's Temporal runtime serves Prometheus on `DURABLE_AGENTS_METRICS_ADDRESS`
  (127.0.0.1:9464 by default; `off` to disable): the SDK's own metrics plus ours, recorded through
  `activity.metric_meter()` and `workflow.metric_meter()` (which records nothing on replay).
- Logs: JSON lines (`DURABLE_AGENTS_LOG_FORMAT=json`, the worker's default), with the workflow id,
  run id, agent, principal and turn lifted to the top of each record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanProcessor,
)
from pythonjsonlogger.json import JsonFormatter
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from durable_agents._vocab.schemas import AgentStatus, AgentStatusValue
from durable_agents.errors import TelemetryConfigError
from durable_agents.settings import Settings, current

log = logging.getLogger("durable_agents.telemetry")
_tracing_on = False


def setup_tracing(
    service: str,
    default: str = "console",
    exporter: SpanExporter | None = None,
    settings: Settings | None = None,
) -> bool:
    """Install the process's tracer provider; True if clients should carry the interceptor.

    `default` applies when DURABLE_AGENTS_TRACING is unset: `console`, `otlp`, `off`, or
    `propagate` (spans are made and carried to the workers, not exported: the CLI's default).
    """
    global _tracing_on
    mode = (settings or current()).tracing or default
    if mode not in ("console", "otlp", "off", "propagate"):
        raise TelemetryConfigError(f"DURABLE_AGENTS_TRACING={mode!r}: use console, otlp or off")
    if mode == "off" and exporter is None:
        return False
    if _tracing_on:
        return True  # one provider per process
    name = os.environ.get("OTEL_SERVICE_NAME", service)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    processor: SpanProcessor | None = None
    if exporter is not None:
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=200)
    elif mode == "console":
        processor = BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
    elif mode == "otlp":
        processor = BatchSpanProcessor(_otlp_exporter())
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _tracing_on = True
    return True


def _otlp_exporter() -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
    except ImportError:
        raise TelemetryConfigError(
            "DURABLE_AGENTS_TRACING=otlp needs the OTLP exporter: "
            'pip install "durable-agents[otlp]"'
        ) from None
    return OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_ENDPOINT, as OpenTelemetry reads it


def interceptors() -> list[Any]:
    """What a client carries: the tracing interceptor once tracing is set up."""
    return [TracingInterceptor()] if _tracing_on else []


def metrics_runtime(
    default: str = "127.0.0.1:9464", settings: Settings | None = None
) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics, or None if they are off."""
    address = ((settings or current()).metrics_address or default).strip()
    if address.lower() in ("", "off"):
        return None
    host = address.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]", "0.0.0.0"):  # noqa: S104  (containers)
        raise TelemetryConfigError(
            f"DURABLE_AGENTS_METRICS_ADDRESS={address!r}: bind 127.0.0.1 (or 0.0.0.0 inside a "
            "container, behind its own network)"
        )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as exc:  # e.g. a second worker on this host: the port is taken
        log.warning(
            "no metrics endpoint: %s (set DURABLE_AGENTS_METRICS_ADDRESS to a free address)", exc
        )
        return None


STATUSES: tuple[AgentStatusValue, ...] = get_args(AgentStatusValue)


async def report_runs(client: Client, meter: MetricMeter) -> dict[str, int]:
    """Set the `durable_agents_runs` gauge per status from a visibility count, and return it."""
    gauge = meter.create_gauge("durable_agents_runs", "agent runs by status (visibility)")
    counts: dict[str, int] = {}
    for status in STATUSES:
        query = (
            f"WorkflowType = 'AgentWorkflow' AND AgentStatus = '{status}' "
            "AND ExecutionStatus != 'ContinuedAsNew'"
        )
        counts[status] = (await client.count_workflows(query)).count
        gauge.set(counts[status], {"status": status})
    await report_approvals(client, meter)
    return counts


async def report_approvals(client: Client, meter: MetricMeter, limit: int = 200) -> list[float]:
    """Pending approvals and the age of the oldest, from the waiting runs' `status` (at most
    `limit` runs; a run no worker answers for is skipped). Returns the ages in seconds."""
    query = (
        "WorkflowType = 'AgentWorkflow' AND AgentStatus = 'waiting_approval' "
        "AND ExecutionStatus != 'ContinuedAsNew'"
    )
    ids = [wf.id async for wf in client.list_workflows(query, limit=limit)]

    async def status(run: str) -> AgentStatus | None:
        try:
            return await client.get_workflow_handle(run).query(
                "status", result_type=AgentStatus, rpc_timeout=timedelta(seconds=2)
            )
        except Exception:  # noqa: BLE001  (no worker for it now: leave it out)
            return None

    now = datetime.now(UTC)
    ages = [
        (now - a.requested_at).total_seconds()
        for s in await asyncio.gather(*(status(run) for run in ids))
        if s is not None
        for a in s.approvals
        if a.state == "pending"
    ]
    meter.create_gauge("durable_agents_approvals_pending", "approvals waiting for a person").set(
        len(ages)
    )
    meter.create_gauge(
        "durable_agents_approval_oldest", "age of the oldest pending approval", "s"
    ).set(int(max(ages, default=0)))
    return ages


async def report_runs_forever(client: Client, meter: MetricMeter, every: float = 15) -> None:
    while True:
        try:
            await report_runs(client, meter)
        except Exception as exc:  # noqa: BLE001  (a metrics gap must never stop the worker)
            log.warning("could not count runs for metrics: %s", exc)
        await asyncio.sleep(every)


FIELDS = ("workflow_id", "run_id", "agent", "principal", "turn", "activity_type", "attempt")


class _Lift(logging.Filter):
    """Temporal puts a workflow's or activity's info in one dict: lift the useful keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, key, None)
            if isinstance(info, dict):
                for name in ("workflow_id", "run_id", "activity_type", "attempt"):
                    if name in info and not hasattr(record, name):
                        setattr(record, name, info[name])
                if "workflow_run_id" in info and not hasattr(record, "run_id"):
                    record.run_id = info["workflow_run_id"]
                delattr(record, key)
        return True


def setup_logging(
    default: str = "json", level: int = logging.INFO, settings: Settings | None = None
) -> None:
    fmt = (settings or current()).log_format or default
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
        handler.addFilter(_Lift())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
