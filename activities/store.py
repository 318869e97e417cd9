"""The content-addressed message store: what the workflow sends to activities by hash.

Objects (messages, preambles, large tool results) are kept under the SHA-256 of their bytes;
links (`head -> parent, message`) name whole conversations (durable_agents/_vocab/chain.py).
Correctness never depends on the store: whoever reads verifies every hash, and a missing object
makes the activity fail with `ConversationMissing`, after which the workflow sends that content
once.

Two implementations, chosen by `DURABLE_AGENTS_STORE_URL`:
- `sqlite:///path` (the default, `<state_dir>/store.sqlite3`): embedded, for the workers of one
  machine; WAL mode, so several worker processes may share the file.
- `redis://host:port/db`: shared by workers on several machines (the `redis` client library).
  Chains are walked on the server by a Lua script, one round trip per conversation.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from durable_agents._codec import Keyring, configured_keyring
from durable_agents.activities.sqlite import open_shared
from durable_agents.errors import CodecConfigError
from durable_agents.settings import current

Link = tuple[str, str | None, str]  # head, parent head (None at the root), message hash


class MessageStore(Protocol):
    async def put(self, objects: dict[str, bytes]) -> None: ...

    async def get(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The objects found; absent ones are left out."""
        ...

    async def put_links(self, links: list[Link]) -> None: ...

    async def put_all(self, objects: dict[str, bytes], links: list[Link]) -> None:
        """Objects and links in one go (one transaction where the store has them)."""
        ...

    async def walk(self, head: str, length: int) -> list[str] | None:
        """The message hashes of the conversation `head` names, oldest first; None if any link
        is missing or the chain does not have `length` messages."""
        ...

    async def clear(self) -> None: ...


class SQLiteStore:
    """One file, shared by the worker processes of a machine."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_shared(
            path,
            "CREATE TABLE IF NOT EXISTS objects (hash TEXT PRIMARY KEY, body BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS links "
            "(head TEXT PRIMARY KEY, parent TEXT, message TEXT NOT NULL)",
        )

    async def put(self, objects: dict[str, bytes]) -> None:
        if objects:
            with self._lock:
                self._db.executemany(
                    "INSERT OR IGNORE INTO objects (hash, body) VALUES (?, ?)", objects.items()
                )

    async def get(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, bytes] = {}
        with self._lock:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT hash, body FROM objects WHERE hash IN ({marks})",  # noqa: S608
                    chunk,
                )
                found.update(rows)
        return found

    async def put_links(self, links: list[Link]) -> None:
        if links:
            with self._lock:
                self._db.executemany(
                    "INSERT OR IGNORE INTO links (head, parent, message) VALUES (?, ?, ?)", links
                )

    async def put_all(self, objects: dict[str, bytes], links: list[Link]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO objects (hash, body) VALUES (?, ?)", objects.items()
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO links (head, parent, message) VALUES (?, ?, ?)", links
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    async def walk(self, head: str, length: int) -> list[str] | None:
        with self._lock:
            rows = self._db.execute(
                "WITH RECURSIVE chain(head, parent, message, depth) AS ("
                " SELECT head, parent, message, 0 FROM links WHERE head = ?"
                " UNION ALL SELECT l.head, l.parent, l.message, chain.depth + 1"
                " FROM links l JOIN chain ON l.head = chain.parent WHERE chain.depth < ?)"
                " SELECT parent, message FROM chain ORDER BY depth DESC",
                (head, length),
            ).fetchall()
        if len(rows) != length or (rows and rows[0][0] is not None):
            return None
        return [message for _, message in rows]

    async def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects")
            self._db.execute("DELETE FROM links")


# Walks a chain on the server: KEYS[1] is the key prefix, ARGV the head and the length.
WALK = """
local out = {}
local head = ARGV[1]
for i = 1, tonumber(ARGV[2]) do
  local v = redis.call('GET', KEYS[1] .. 'l:' .. head)
  if not v then return false end
  local sep = string.find(v, ':', 1, true)
  out[i] = string.sub(v, sep + 1)
  head = string.sub(v, 1, sep - 1)
end
if head ~= '' then return false end
return out
"""


class RedisStore:
    """Shared by workers on several machines."""

    def __init__(self, url: str, prefix: str = "durable-agents:") -> None:
        import redis.asyncio as aioredis  # only where a shared store is configured

        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._walk = self._redis.register_script(WALK)

    async def put(self, objects: dict[str, bytes]) -> None:
        if objects:
            async with self._redis.pipeline(transaction=False) as pipe:
                for h, body in objects.items():
                    pipe.set(f"{self._prefix}o:{h}", body, nx=True)
                await pipe.execute()

    async def get(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        values = await self._redis.mget([f"{self._prefix}o:{h}" for h in wanted])
        return {
            h: v if isinstance(v, bytes) else v.encode()
            for h, v in zip(wanted, values, strict=True)
            if v is not None
        }

    async def put_links(self, links: list[Link]) -> None:
        if links:
            await self._redis.mset(
                {f"{self._prefix}l:{head}": f"{parent or ''}:{msg}" for head, parent, msg in links}
            )

    async def put_all(self, objects: dict[str, bytes], links: list[Link]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for h, body in objects.items():
                pipe.set(f"{self._prefix}o:{h}", body, nx=True)
            for head, parent, msg in links:
                pipe.set(f"{self._prefix}l:{head}", f"{parent or ''}:{msg}")
            await pipe.execute()

    async def walk(self, head: str, length: int) -> list[str] | None:
        found = await self._walk(keys=[self._prefix], args=[head, length])
        if not found:
            return None if length else []
        # The script walks from the head back to the root.
        return [v.decode() if isinstance(v, bytes) else str(v) for v in reversed(found)]

    async def clear(self) -> None:
        async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=1000):
            await self._redis.delete(key)


class EncryptedStore:
    """Objects encrypted with the payload codec's keys (hashes and links stay as they are: they
    name content, they do not reveal it)."""

    def __init__(self, inner: MessageStore, keyring: Keyring) -> None:
        self._inner, self._keys = inner, keyring

    async def put(self, objects: dict[str, bytes]) -> None:
        await self._inner.put(self._seal(objects))

    async def get(self, hashes: Iterable[str]) -> dict[str, bytes]:
        found = {}
        for h, body in (await self._inner.get(hashes)).items():
            kid, sep, data = body.partition(b"\0")
            try:
                found[h] = self._keys.decrypt(kid.decode(errors="replace"), data) if sep else body
            except CodecConfigError:
                continue  # unreadable counts as missing: the workflow sends it again
        return found

    async def put_links(self, links: list[Link]) -> None:
        await self._inner.put_links(links)

    async def put_all(self, objects: dict[str, bytes], links: list[Link]) -> None:
        await self._inner.put_all(self._seal(objects), links)

    def _seal(self, objects: dict[str, bytes]) -> dict[str, bytes]:
        sealed = {}
        for h, body in objects.items():
            kid, data = self._keys.encrypt(body)
            sealed[h] = kid.encode() + b"\0" + data
        return sealed

    async def walk(self, head: str, length: int) -> list[str] | None:
        return await self._inner.walk(head, length)

    async def clear(self) -> None:
        await self._inner.clear()


class CachedStore:
    """A worker's memory of what it stored or read. Content-addressed entries never change, so
    the cache is never stale; it only saves round trips. Bounded: least recently used goes."""

    def __init__(self, inner: MessageStore, max_bytes: int = 64_000_000, max_links: int = 200_000):
        self._inner = inner
        self._objects: OrderedDict[str, bytes] = OrderedDict()
        self._links: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        self._bytes, self._max_bytes, self._max_links = 0, max_bytes, max_links

    def _remember(self, objects: dict[str, bytes], links: list[Link]) -> None:
        for h, body in objects.items():
            if h not in self._objects:
                self._objects[h] = body
                self._bytes += len(body)
        while self._bytes > self._max_bytes and self._objects:
            self._bytes -= len(self._objects.popitem(last=False)[1])
        for head, parent, msg in links:
            self._links[head] = (parent, msg)
        while len(self._links) > self._max_links:
            self._links.popitem(last=False)

    async def put(self, objects: dict[str, bytes]) -> None:
        await self._inner.put({h: b for h, b in objects.items() if h not in self._objects})
        self._remember(objects, [])

    async def get(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(hashes))
        found = {h: self._objects[h] for h in wanted if h in self._objects}
        for h in found:
            self._objects.move_to_end(h)
        missing = [h for h in wanted if h not in found]
        if missing:
            fetched = await self._inner.get(missing)
            self._remember(fetched, [])
            found |= fetched
        return found

    async def put_links(self, links: list[Link]) -> None:
        await self.put_all({}, links)

    async def put_all(self, objects: dict[str, bytes], links: list[Link]) -> None:
        new_objects = {h: b for h, b in objects.items() if h not in self._objects}
        new_links = [link for link in links if link[0] not in self._links]
        if new_objects or new_links:
            await self._inner.put_all(new_objects, new_links)
        self._remember(objects, links)

    async def walk(self, head: str, length: int) -> list[str] | None:
        tail: list[str] = []
        at: str | None = head
        while at is not None and len(tail) < length and at in self._links:
            at, message = self._links[at]
            tail.append(message)
        if at is None:
            return tail[::-1] if len(tail) == length else None
        if len(tail) == length:
            return None  # longer than it should be
        rest = await self._inner.walk(at, length - len(tail))
        return None if rest is None else rest + tail[::-1]

    async def clear(self) -> None:
        self._objects.clear()
        self._links.clear()
        self._bytes = 0
        await self._inner.clear()


def _open(url: str) -> MessageStore:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # As SQLAlchemy spells it: sqlite:///relative/path, sqlite:////absolute/path.
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    if parsed.scheme in ("redis", "rediss", "unix"):
        return RedisStore(url)
    raise ValueError(
        f"unsupported DURABLE_AGENTS_STORE_URL {url!r}: use sqlite:///path or redis://host:port/db"
    )


@lru_cache(maxsize=8)
def _cached(url: str, loop: int, keyring: Keyring | None) -> MessageStore:
    store = _open(url)
    return CachedStore(EncryptedStore(store, keyring) if keyring is not None else store)


def store_url() -> str:
    settings = current()
    return settings.store_url or _default_url(settings.state_dir)


@lru_cache(maxsize=4)
def _default_url(state_dir: Path) -> str:
    return f"sqlite:///{(state_dir / 'store.sqlite3').resolve()}"


def get_store() -> MessageStore:
    """The worker's store (per event loop: a Redis client is bound to the loop it was made on)."""
    url = store_url()
    loop = id(asyncio.get_running_loop()) if url.startswith(("redis", "unix")) else 0
    return _cached(url, loop, configured_keyring())
