"""Encrypted payloads: the AES-GCM codec, key rotation, the codec server, a run with encryption
on, and secrets (the worker's keys, the agents' credentials and tokens) that never reach
history."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from bench.history import payloads_in
from durable_agents import _codec as codec
from durable_agents._codec import EncryptionCodec, Keyring, parse_keys
from durable_agents._vocab.schemas import AgentResult, AgentRun, EventSignal
from durable_agents.client import start_run
from durable_agents.errors import CodecConfigError
from durable_agents.starters.codec_server import create_app
from durable_agents.workers.main import build_worker
from durable_agents.workflows.agent import AgentWorkflow
from tests.helpers import approve_pending, hire, sim_token, wait_for_status


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_and_the_key_id_in_the_metadata() -> None:
    keys = parse_keys(f"k1={key()}", "test")
    codec_ = EncryptionCodec(keys)
    [sealed] = await codec_.encode([payload('"secret plan"')])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert b"secret" not in sealed.SerializeToString()
    assert await codec_.decode([sealed]) == [payload('"secret plan"')]
    # Unencrypted payloads (from before the codec was on) still read.
    assert await codec_.decode([payload("1")]) == [payload("1")]


async def test_rotation_keeps_old_payloads_readable() -> None:
    old, new = key(), key()
    before = EncryptionCodec(parse_keys(f"k1={old}", "test"))
    after = EncryptionCodec(parse_keys(f"k2={new}\nk1={old}  # kept for old history", "test"))
    [old_sealed] = await before.encode([payload('"written last year"')])
    [new_sealed] = await after.encode([payload('"written today"')])
    assert new_sealed.metadata["encryption-key-id"] == b"k2"
    assert await after.decode([old_sealed, new_sealed]) == [
        payload('"written last year"'),
        payload('"written today"'),
    ]
    with pytest.raises(CodecConfigError, match="key 'k2', which is not configured"):
        await before.decode([new_sealed])
    wrong = EncryptionCodec(parse_keys(f"k1={key()}", "test"))
    with pytest.raises(CodecConfigError, match="wrong key material, or tampered"):
        await wrong.decode([old_sealed])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "names no keys"),
        ("k1", "expected id=<base64 key>"),
        ("k1=not base64!", "is not base64"),
        (f"k1={base64.b64encode(b'short').decode()}", "AES-256 needs 32"),
    ],
)
def test_bad_key_configuration_says_what_to_do(text: str, problem: str) -> None:
    with pytest.raises(CodecConfigError, match=problem):
        parse_keys(text, "DURABLE_AGENTS_CODEC_KEYS")


@pytest.fixture
def codec_server() -> Iterator[tuple[str, Keyring]]:
    keys = parse_keys(f"k1={key()}", "test")
    app = create_app(keys, "s3cret-token", ("http://127.0.0.1:8233",))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield url, keys
    server.should_exit = True
    thread.join(10)


async def test_the_codec_server_decodes_only_for_the_token_and_allowed_origins(
    codec_server: tuple[str, Keyring],
) -> None:
    url, keys = codec_server
    [sealed] = await EncryptionCodec(keys).encode([payload('{"ssn": "123-45-6789"}')])
    body = json_format.MessageToJson(Payloads(payloads=[sealed]))
    bearer = {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/decode", content=body)).status_code == 401
        wrong = {**bearer, "Authorization": "Bearer guess"}
        assert (await http.post("/decode", content=body, headers=wrong)).status_code == 401
        evil = {**bearer, "Origin": "https://evil.example"}
        assert (await http.post("/decode", content=body, headers=evil)).status_code == 403
        ok = await http.post("/decode", content=body, headers=bearer)
        assert ok.status_code == 200
        [plain] = json_format.Parse(ok.content, Payloads()).payloads
        assert plain.data == b'{"ssn": "123-45-6789"}'
        # The UI carries the token in the path, and gets CORS headers for its origin.
        ui = {"Origin": "http://127.0.0.1:8233", "Content-Type": "application/json"}
        resp = await http.post("/t/s3cret-token/decode", content=body, headers=ui)
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        preflight = await http.options("/t/s3cret-token/decode", headers=ui)
        assert preflight.status_code == 204


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The provider keys and codec token the worker holds: sentinels to look for."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SENTINEL-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SENTINEL-0123456789")
    monkeypatch.setenv("DURABLE_AGENTS_CODEC_TOKEN", "SENTINEL-codec-token")
    yield "SENTINEL"
    monkeypatch.undo()


@pytest.fixture
def encrypted(
    secrets_in_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Encryption on, too, with a message store of its own."""
    monkeypatch.setenv("DURABLE_AGENTS_CODEC_KEYS", f"k1={key()}")
    monkeypatch.setenv("DURABLE_AGENTS_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield secrets_in_env
    monkeypatch.undo()


def with_converter(client: Client, converter: DataConverter) -> Client:
    return Client(client.service_client, namespace=client.namespace, data_converter=converter)


async def onboard_with_the_workers_own_key(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str
) -> WorkflowHandle[Any, AgentResult]:
    client = with_converter(dev_env.client, codec.data_converter())
    # The openai route uses the worker's own key (here a sentinel) against the sim.
    os.environ["OPENAI_BASE_URL"] = f"{sim.url}/v1"
    try:
        async with build_worker(client, task_queue):
            data = hire(full_name="Grace Hopper")
            run = AgentRun(
                agent="onboarding",
                input=data,
                principal="tester",
                model_route=["openai:onboarding"],
            )
            handle = await start_run(client, run, f"sealed-{uuid.uuid4().hex[:6]}", task_queue)
            await wait_for_status(handle, "waiting_event")
            await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
            await approve_pending(handle)
            result = await asyncio.wait_for(handle.result(), 60)
    finally:
        del os.environ["OPENAI_BASE_URL"]
    assert result.outcome == "completed"
    return handle


JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")


def assert_no_identity_secret(history: str, sim: Any, run: str) -> None:
    """Neither a token nor a secret of the identity provider or its clients is in `history`,
    though the run obtained tokens (the scan looks where they would be)."""
    issued = httpx.get(f"{sim.url}/idp/issued", params={"run": run}).json()["issued"]
    assert {i["audience"] for i in issued} == {"hr", "it", "mail"}, issued
    assert JWT.fullmatch(sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write"))
    # The only tokens in history are people's proofs: each for one message of this run, for
    # the workers' audience, short-lived, and worth nothing at a system.
    for found in {m.group(0) for m in JWT.finditer(history)}:
        claims = json.loads(base64.urlsafe_b64decode(found.split(".")[1] + "=="))
        assert claims["aud"] == "durable-agents", claims
        [details] = claims["authorization_details"]
        assert details["run"] == run and claims["exp"] - claims["iat"] <= 300, claims
        tried = httpx.post(
            f"{sim.url}/hr/mailboxes",
            json={"employee_id": "E-x", "full_name": "X"},
            headers={"Authorization": f"Bearer {found}", "Idempotency-Key": f"{run}/stolen"},
        )
        assert tried.status_code == 401
    clients = tomllib.loads(sim.credentials.read_text())
    secrets = [c["client_secret"] for c in clients.values()]
    for key in sim.app.state.db.query("SELECT jwk FROM idp_keys"):
        secrets += [v for k, v in json.loads(key["jwk"]).items() if k in ("d", "p", "q")]
    assert len(secrets) > 3 and not [s for s in secrets if s in history]


async def test_no_secret_of_the_worker_reaches_history(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str, secrets_in_env: str
) -> None:
    handle = await onboard_with_the_workers_own_key(dev_env, sim, task_queue)
    raw = (await handle.fetch_history()).to_json()
    text = b"\n".join(p.data for e in (await handle.fetch_history()).events for p in payloads_in(e))
    assert b"Welcome to Acme" in text  # plain: the scan reads what is there
    assert secrets_in_env not in raw and secrets_in_env.encode() not in text
    for history in (raw, text.decode()):
        assert_no_identity_secret(history, sim, handle.id)


async def test_a_run_with_encryption_on_keeps_history_and_store_unreadable_and_secret_free(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str, encrypted: str
) -> None:
    handle = await onboard_with_the_workers_own_key(dev_env, sim, task_queue)
    # Read with a client that has no keys: nothing readable.
    plain_client = with_converter(dev_env.client, pydantic_data_converter)
    raw = (await plain_client.get_workflow_handle(handle.id).fetch_history()).to_json()
    assert "Grace" not in raw and "welcome" not in raw.lower()
    assert base64.b64encode(b"binary/encrypted").decode() in raw  # every payload's encoding
    # Decoded with the keys, the history is whole, and still holds no secret of the worker.
    events = (await handle.fetch_history()).events
    sealed = [p for e in events for p in payloads_in(e)]
    decoded = await EncryptionCodec(codec.configured_keyring()).decode(sealed)  # type: ignore[arg-type]
    text = b"\n".join(p.SerializeToString() for p in decoded).decode(errors="replace")
    assert "Grace Hopper" in text and "Welcome to Acme" in text
    for history in (raw, text):
        assert encrypted not in history
        assert_no_identity_secret(history, sim, handle.id)
    # What was kept outside history is encrypted too.
    path = Path(os.environ["DURABLE_AGENTS_STORE_URL"].removeprefix("sqlite:///"))
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            assert b"Grace Hopper" not in file.read_bytes()
