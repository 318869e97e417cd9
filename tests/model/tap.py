"""A wire tap in front of the model server: a loopback TCP relay that passes every byte through
unchanged and keeps a copy of what the server answered, so a test can hold a run's record up
against what the server really sent (its words, its tool calls, its usage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from bench.real_model import MODEL


@dataclass
class Answer:
    """One HTTP response of the server."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def streamed(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def events(self) -> list[dict[str, Any]]:
        """A streamed answer's server-sent events (`data: {...}`), `[DONE]` left out."""
        lines = self.body.decode().splitlines()
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        return [json.loads(d) for d in data if d.strip() != "[DONE]"]

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class WireTap:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._copies: list[bytearray] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def route(self) -> str:
        return f"openai-compatible:{self.url}:{MODEL}"

    async def __aenter__(self) -> WireTap:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    async def _relay(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            down_w.close()
            self._tasks.discard(task)
            return
        copy = bytearray()
        self._copies.append(copy)
        try:
            await asyncio.gather(_pipe(down_r, up_w), _pipe(up_r, down_w, copy))
        except asyncio.CancelledError:
            up_w.close()  # the tap closes: so do its connections
            down_w.close()
        finally:
            self._tasks.discard(task)

    def answers(self) -> list[Answer]:
        """Every response the server sent through the tap, in order per connection."""
        return [answer for copy in self._copies for answer in _responses(bytes(copy))]

    def completions(self) -> list[dict[str, Any]]:
        """The chat completions the server answered with 200, a streamed one assembled from its
        chunks (its text, tool calls as sent, finish reason, usage if the server sent one)."""
        found = []
        for answer in self.answers():
            if answer.status != 200:
                continue
            if not answer.streamed:
                found.append(answer.json())
                continue
            chunks = answer.events()
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
            )
            reasons = [
                c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")
            ]  # fmt: skip
            found.append(
                {
                    "chunks": len(chunks),
                    "choices": [
                        {
                            "message": {"content": text},
                            "finish_reason": next((r for r in reasons if r), None),
                        }
                    ],
                    "usage": next((c["usage"] for c in chunks if c.get("usage")), None),
                }
            )
        return found


async def _pipe(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, copy: bytearray | None = None
) -> None:
    try:
        while data := await src.read(65536):
            if copy is not None:
                copy.extend(data)
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


def _responses(raw: bytes) -> list[Answer]:
    """HTTP/1.1 responses one after another on a connection (content-length or chunked)."""
    found, i = [], 0
    while (end := raw.find(b"\r\n\r\n", i)) != -1:
        head = raw[i:end].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        i = end + 4
        if "content-length" in headers:
            size = int(headers["content-length"])
            body, i = raw[i : i + size], i + size
        elif headers.get("transfer-encoding") == "chunked":
            parts = bytearray()
            while (line := raw.find(b"\r\n", i)) != -1:
                size = int(raw[i:line].split(b";")[0], 16)
                i = line + 2
                if size == 0:
                    i += 2  # the empty trailer
                    break
                parts += raw[i : i + size]
                i += size + 2
            body = bytes(parts)
        else:
            body, i = raw[i:], len(raw)
        found.append(Answer(status, headers, body))
    return found
