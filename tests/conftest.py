"""Shared fixtures: the sim world, the time-skipping server and the dev server, once a session."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_agents.activities import circuit
from durable_agents.starters.devserver import VERSIONING, binary
from durable_agents.workers.main import build_worker
from durable_agents.workflows.search import ALL as SEARCH_ATTRIBUTES
from sim.runner import SimServer
from tests.helpers import SimTokens, start_time_skipping, world
from tests.people import People


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    server = SimServer(tmp_path_factory.mktemp("sim") / "sim.db").start()
    # The session's workers and CLI live in this sim world: its models, identity provider
    # (with the agents' clients as the sim wrote them) and systems.
    os.environ.update(world(server.url, server.credentials))
    store = tmp_path_factory.mktemp("store") / "store.sqlite3"
    os.environ["DURABLE_AGENTS_STORE_URL"] = f"sqlite:///{store}"
    os.environ["DURABLE_AGENTS_AUDIT_PATH"] = str(store.parent / "audit.sqlite3")
    # Worker processes the tests start: no metrics port to fight over, no spans on stderr (the
    # telemetry tests turn both on for themselves).
    os.environ["DURABLE_AGENTS_METRICS_ADDRESS"] = "off"
    os.environ["DURABLE_AGENTS_TRACING"] = "off"
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _signed_in(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """In a test with the sim: its people can sign in (`people`, `People.current`)."""
    if "sim" in request.fixturenames:
        sim = request.getfixturevalue("sim")
        People.current = People.of(sim.url, sim.db_path.parent, tmp_path_factory)


@pytest.fixture
def people(sim: SimServer) -> People:
    """The sim world's people, signed in at its identity provider (tests/people.py)."""
    assert People.current is not None and People.current.base == sim.url
    return People.current


@pytest.fixture
def ledger(sim: SimServer):  # type: ignore[no-untyped-def]
    """Count the sim's recorded effects for one workflow id."""

    def count(workflow_id: str, action: str) -> int:
        entries = httpx.get(f"{sim.url}/ledger", params={"action": action}).json()["entries"]
        return sum(1 for e in entries if e["idempotency_key"].startswith(f"{workflow_id}/"))

    return count


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    db = tmp_path_factory.mktemp("temporal") / "temporal.db"
    args = ["--db-filename", str(db), "--log-level", "warn", *VERSIONING]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary("temporal"),
        dev_server_extra_args=args,
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def ts_worker(ts_env: WorkflowEnvironment, sim: SimServer, task_queue: str):  # type: ignore[no-untyped-def]
    async with build_worker(ts_env.client, task_queue) as worker:
        yield worker


@pytest.fixture
async def dev_worker(dev_env: WorkflowEnvironment, sim: SimServer, task_queue: str):  # type: ignore[no-untyped-def]
    async with build_worker(dev_env.client, task_queue) as worker:
        yield worker


@pytest.fixture(autouse=True)
def fresh_circuits() -> Iterator[None]:
    """Each test starts with every model's circuit closed: failures do not carry over."""
    circuit.reset()
    yield
    circuit.reset()


@pytest.fixture
def fault(sim):  # type: ignore[no-untyped-def]
    """Queue a fault at the sim for the next `times` matching requests; clear them after."""

    def queue(target: str, kind: str, times: int, **params: Any) -> None:
        httpx.post(
            f"{sim.url}/admin/faults",
            json={
                "target": target,
                "fault": kind,
                "params": params,
                "times": times,
            },
        ).raise_for_status()

    yield queue
    httpx.delete(f"{sim.url}/admin/faults")


@pytest.fixture
def spawn_worker(dev_env: WorkflowEnvironment, sim: SimServer, task_queue: str) -> Iterator:  # type: ignore[type-arg]
    """Start worker processes on this test's queue; kill any left at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    env = os.environ | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DURABLE_AGENTS_TASK_QUEUE": task_queue,
        **world(sim.url, sim.credentials),
    }

    def spawn() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable_agents.workers"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


# Clients of the sim for the sim's own tests; `sim` resolves to the test module's own server
# where a module defines one.
@pytest.fixture
async def http(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    auth = SimTokens(sim.url, sim.credentials)
    async with httpx.AsyncClient(base_url=sim.url, timeout=10, auth=auth) as client:
        await client.delete("/admin/faults")
        yield client


@pytest.fixture
async def oai(sim: SimServer, http: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="sim", max_retries=0) as c:
        yield c
