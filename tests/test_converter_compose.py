"""The plugin keeps a client's own data converter: its payload codec (e.g. its encryption), its
payload and failure converters; the project's pydantic converter goes in only where the client
has the SDK's default, and the project's encryption only where the client has no codec. Both
codecs at once are refused in one sentence."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from google.protobuf.message import Message as Proto
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    PayloadCodec,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_agents import AgentSet, AgentSpec, Directory, DurableAgentsPlugin, ToolContext, tool
from durable_agents._codec import CodecConflict, EncryptionCodec, composed
from durable_agents._vocab.schemas import AgentRun
from durable_agents.testing import Message, Reply, ScriptedModel, call, results, task_input
from durable_agents.workflows.agent import AgentWorkflow

MARK = b"binary/user-marked"  # the user's codec's own encoding
SECRET = "PLAN-7-NIGHTINGALE"  # in the run's input, a tool's result and the answer


class Marked(PayloadCodec):
    """A user's own codec: reversible, each payload wrapped whole under its own encoding."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": MARK}, data=base64.b64encode(p.SerializeToString()))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload.FromString(base64.b64decode(p.data))
            if p.metadata.get("encoding") == MARK
            else p
            for p in payloads
        ]


class Mine(DefaultPayloadConverter):
    """A user's own payload converter (not the SDK's default class)."""


class Plan(BaseModel):
    code: str


class Filed(BaseModel):
    code: str
    status: str


@tool(side_effect="read_only")
async def file_plan(args: Plan, ctx: ToolContext) -> Filed:
    """File the plan."""
    return Filed(code=args.code, status="filed")


def clerk(messages: list[Message]) -> Reply:
    if not results(messages, "file_plan"):
        return call("file_plan", code=task_input(messages)["code"])
    return f"{results(messages, 'file_plan')[-1]['code']}: filed"


FILER = AgentSpec(
    name="filer",
    version="1",
    description="Files plans.",
    system_prompt="File the plan.",
    model_route=("scripted:filer",),
    tools=(file_plan,),
    input_model=Plan,
)
AGENTS = AgentSet(
    (FILER,),
    source="tests.test_converter_compose",
    directory=Directory(services=frozenset({"batch"}), groups={"operators": frozenset({"olga"})}),
    models=[ScriptedModel("filer", clerk)],  # served by the plugin with no models= of its own
)


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DURABLE_AGENTS_CODEC_KEYS", raising=False)
    monkeypatch.delenv("DURABLE_AGENTS_CODEC_KEYS_FILE", raising=False)
    yield


@pytest.fixture
def keys(no_keys: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DURABLE_AGENTS_CODEC_KEYS", f"k1={base64.b64encode(os.urandom(32)).decode()}"
    )


def encoded(message: Proto) -> list[Payload]:
    """The payloads of a history event that pass through the data converter: all but search
    attributes, headers and the SDK's own patch markers, which Temporal keeps readable."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE or field.name in ("search_attributes", "header"):
            continue
        if isinstance(value, Proto):
            found += encoded(value)
            continue
        items = value.items() if hasattr(value, "items") else enumerate(value)
        found += [p for key, item in items if key != "patch-data" for p in encoded(item)]
    return found


def test_the_project_fills_in_only_what_the_client_lacks(no_keys: None) -> None:
    plain = composed(DataConverter.default)
    assert plain.payload_converter_class is PydanticPayloadConverter and plain.payload_codec is None
    codec = Marked()
    users = DataConverter(
        payload_converter_class=Mine,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
    assert composed(users) is users  # nothing to add: every part is the user's
    kept = composed(DataConverter(payload_codec=codec))
    assert kept.payload_codec is codec and kept.payload_converter_class is PydanticPayloadConverter


def test_the_project_encrypts_only_where_the_client_has_no_codec(keys: None) -> None:
    converter = composed(DataConverter.default)
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_converter_class is PydanticPayloadConverter
    again = composed(converter)  # a second plugin (client, then replayer) changes nothing
    assert again.payload_codec is converter.payload_codec


async def test_two_codecs_are_refused_in_one_sentence(keys: None) -> None:
    with pytest.raises(CodecConflict) as refused:
        await Client.connect(
            "127.0.0.1:1",  # lazy: refused before any connection
            lazy=True,
            data_converter=DataConverter(payload_codec=Marked()),
            plugins=[DurableAgentsPlugin(AGENTS)],
        )
    assert isinstance(refused.value, ValueError)
    text = str(refused.value)
    assert "own payload codec (Marked)" in text and "DURABLE_AGENTS_CODEC_KEYS is set" in text
    assert "unset DURABLE_AGENTS_CODEC_KEYS to keep your codec" in text and text.count(". ") == 0


async def test_a_run_on_the_plugin_writes_history_through_the_users_codec(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_keys: None,
) -> None:
    monkeypatch.setenv("DURABLE_AGENTS_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    monkeypatch.setenv("DURABLE_AGENTS_AUDIT_PATH", str(tmp_path / "audit.sqlite3"))
    address = dev_env.client.service_client.config.target_host
    client = await Client.connect(
        address,
        data_converter=DataConverter(payload_codec=Marked()),
        plugins=[DurableAgentsPlugin(AGENTS)],
    )
    assert isinstance(client.data_converter.payload_codec, Marked)
    assert client.data_converter.payload_converter_class is PydanticPayloadConverter
    async with Worker(client, task_queue=task_queue):
        handle = await client.start_workflow(
            AgentWorkflow.run,
            AgentRun(agent="filer", input={"code": SECRET}, principal="batch"),
            id=f"filer-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.outcome == "completed" and result.answer == f"{SECRET}: filed"
    history = await handle.fetch_history()  # as Temporal stores it: events carry raw payloads
    payloads = [p for event in history.events for p in encoded(event)]
    assert len(payloads) > 10  # the input, model calls and replies, the tool call, the result
    assert {p.metadata["encoding"] for p in payloads} == {MARK}
    raw = b"".join(event.SerializeToString() for event in history.events)
    assert SECRET.encode() not in raw
