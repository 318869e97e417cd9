"""Traces (one per run, GenAI spans, none from a replay), Prometheus metrics, JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from durable_agents._discovery import discover
from durable_agents._vocab.schemas import AgentRun
from durable_agents.client import start_run
from durable_agents.starters.devserver import free_port
from durable_agents.workers import telemetry
from durable_agents.workers.main import build_worker
from durable_agents.workers.plugin import DurableAgentsPlugin
from tests.helpers import approve_pending, wait_for_status

SPANS = InMemorySpanExporter()
RUN_SPANS = (
    "StartWorkflow:",
    "RunWorkflow",
    "StartActivity",
    "RunActivity",
    "chat ",
    "execute_tool",
)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    telemetry._tracing_on = False  # this process's provider: one that keeps spans in memory
    assert telemetry.setup_tracing("test", exporter=SPANS)
    return SPANS


def traced(client: Client, runtime: Runtime | None = None) -> Client:
    return Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
    )


def flushed(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    provider = trace.get_tracer_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    return list(exporter.get_finished_spans())


async def test_a_run_is_one_trace_with_genai_spans_and_a_replay_adds_none(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    client = traced(dev_env.client)
    run = AgentRun(agent="reader", input={"turns": 1, "email_at": 1}, principal="tester")
    async with build_worker(client, task_queue):
        with trace.get_tracer("agentctl").start_as_current_span("agentctl run") as root:
            handle = await start_run(client, run, f"traced-{uuid.uuid4().hex[:6]}", task_queue)
        await approve_pending(handle, approver="olga")
        await handle.result()
    got = flushed(spans)
    trace_id = root.get_span_context().trace_id
    # One trace from the start to the last activity (queries, the approver's update and the
    # sim's own server spans are other operations, with traces of their own).
    run_spans = [s for s in got if s.name.startswith(RUN_SPANS)]
    assert len(run_spans) > 10
    assert {s.context.trace_id for s in run_spans if s.context} == {trace_id}
    names = [s.name for s in got]
    for expected in (
        "agentctl run",
        "StartWorkflow:AgentWorkflow",
        "RunWorkflow:AgentWorkflow",
        "RunActivity:call_llm",
        "chat reader",
        "execute_tool read_document",
        "execute_tool send_email",
    ):
        assert expected in names, (expected, names)
    by_id = {s.context.span_id: s for s in got if s.context}
    chats = [s for s in got if s.name == "chat reader"]
    assert len(chats) == 3  # one per turn
    for chat in chats:
        assert chat.parent is not None and by_id[chat.parent.span_id].name == "RunActivity:call_llm"
        a = chat.attributes or {}
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "sim-openai"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "reader"
        assert a["gen_ai.conversation.id"] == handle.id
        assert int(a["gen_ai.usage.input_tokens"]) > 0  # type: ignore[arg-type]
        assert int(a["gen_ai.usage.output_tokens"]) > 0  # type: ignore[arg-type]
        assert a["gen_ai.response.finish_reasons"]
    [email] = [s for s in got if s.name == "execute_tool send_email"]
    a = email.attributes or {}
    assert a["gen_ai.operation.name"] == "execute_tool" and a["gen_ai.tool.name"] == "send_email"
    assert a["durable_agents.principal"] == "tester"
    # Replaying the whole history makes no span at all (and runs no activity: no tokens).
    spans.clear()
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[],
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
        plugins=[DurableAgentsPlugin(discover(), data_converter=False)],
    )
    assert (await replayer.replay_workflow(history)).replay_failure is None
    assert flushed(spans) == []


async def test_metrics_on_the_workers_prometheus_endpoint(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str
) -> None:
    port = free_port(9464)
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    target = dev_env.client.service_client.config.target_host
    client = await Client.connect(target, data_converter=pydantic_data_converter, runtime=runtime)
    run = AgentRun(agent="reader", input={"turns": 2, "email_at": 1}, principal="tester")
    async with build_worker(client, task_queue):
        handle = await start_run(client, run, f"metered-{uuid.uuid4().hex[:6]}", task_queue)
        await wait_for_status(handle, "waiting_approval")
        for _ in range(50):  # visibility catches up
            ages = await telemetry.report_approvals(client, runtime.metric_meter)
            if ages:
                break
            await asyncio.sleep(0.1)
        assert len(ages) >= 1 and all(age >= 0 for age in ages)
        await approve_pending(handle, approver="olga")
        await handle.result()
    counts = await telemetry.report_runs(client, runtime.metric_meter)
    assert counts["completed"] >= 1
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    lines = text.splitlines()

    def value(prefix: str, *labels: str) -> float:
        found = [ln for ln in lines if ln.startswith(prefix) and all(x in ln for x in labels)]
        assert found, (prefix, labels)
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in found)

    assert value("durable_agents_llm_tokens", 'agent="reader"', 'direction="input"') > 0
    assert value("durable_agents_llm_tokens", 'agent="reader"', 'direction="output"') > 0
    assert value("durable_agents_llm_latency", 'model="reader"') > 0
    assert value("durable_agents_approvals_requested", 'tool="send_email"') == 1
    assert value("durable_agents_approvals_decided", 'outcome="approved"') == 1
    assert value("durable_agents_approval_age", "_count") >= 1
    assert value("durable_agents_run_transitions", 'status="completed"') >= 1
    assert value("durable_agents_runs", 'status="completed"') >= 1
    assert any(ln.startswith("durable_agents_approvals_pending") for ln in lines)
    assert any(ln.startswith("durable_agents_approval_oldest") for ln in lines)
    assert any(ln.startswith("temporal_") for ln in lines)  # the SDK's own, alongside


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    telemetry.setup_logging("json")
    handler.setFormatter(root.handlers[0].formatter)
    for f in root.handlers[0].filters:
        handler.addFilter(f)
    root.handlers[:] = [handler]
    yield out
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_logs_are_json_with_the_run_agent_principal_and_turn(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, json_logs: io.StringIO
) -> None:
    run = AgentRun(agent="reader", input={"turns": 1}, principal="tester")
    handle = await start_run(dev_env.client, run, f"logged-{uuid.uuid4().hex[:6]}", task_queue)
    await handle.result()
    records = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    mine = [r for r in records if r.get("workflow_id") == handle.id]
    from_workflow = [r for r in mine if r["logger"] == "temporalio.workflow"]
    assert from_workflow and all(r["run_id"] and r["agent"] == "reader" for r in from_workflow)
    assert {r["principal"] for r in from_workflow} == {"tester"}
    assert any(r["turn"] == 1 and r["message"].startswith("tool_call:") for r in from_workflow)
    from_activities = [r for r in mine if r["logger"] == "temporalio.activity"]
    assert any(
        r.get("activity_type") == "call_llm" and r["agent"] == "reader" for r in from_activities
    )
    assert all("level" in r and "time" in r for r in mine)
