"""The model's words on the run's live stream while `call_llm` streams them.

Pieces go to the run in batches (one signal each, LIVE_BATCH apart) through
`WorkflowStreamClient.from_within_activity`; the first words go as soon as the call has lasted
`Settings.live_text_after_ms` (100 ms; or as soon as they come, after that). A reply that is
whole before then sends nothing: the run publishes the step with the whole text a moment later
anyway, so a signal (and the workflow task it wakes) would buy a watcher nothing. That keeps
streaming on by default cheap: the many fast calls cost no more than unstreamed ones, and the
slow ones, where a person waits for words, are the ones whose words are sent as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity

from durable_agents._vocab.live import TEXT_TOPIC, LiveEvent

if TYPE_CHECKING:
    from temporalio.contrib.workflow_streams import WorkflowStreamClient

    from durable_agents._vocab.schemas import LLMRequest

# How often streamed text is published (one signal to the run a batch).
LIVE_BATCH = timedelta(milliseconds=250)
# How long a reply may take to be whole before its words are sent at all: the worker's
# DURABLE_AGENTS_LIVE_TEXT_AFTER_MS, 100 by default.


class LiveText:
    """`async with LiveText(request) as text: text.publish(words)`: each piece names this
    attempt, so a watcher drops what an attempt that failed had written."""

    def __init__(self, request: LLMRequest) -> None:
        self._request = request
        self._held: list[LiveEvent] = []
        self._client: WorkflowStreamClient | None = None
        self._topic: Any = None
        self._opening: asyncio.Task[None] | None = None
        self._first_sent = False

    async def __aenter__(self) -> LiveText:
        self._opening = asyncio.create_task(self._open_after_first_batch())
        return self

    async def _open_after_first_batch(self) -> None:
        from temporalio.contrib.workflow_streams import WorkflowStreamClient

        from durable_agents.settings import current

        await asyncio.sleep(current().live_text_after_ms / 1000)
        client = WorkflowStreamClient.from_within_activity(batch_interval=LIVE_BATCH)
        await client.__aenter__()
        self._client = client
        self._topic = client.topic(TEXT_TOPIC, type=LiveEvent)
        for i, piece in enumerate(self._held):
            # What came during the hold goes at once (a person is waiting for it).
            self._topic.publish(piece, force_flush=i == len(self._held) - 1)
        self._first_sent = bool(self._held)
        self._held.clear()

    def publish(self, words: str) -> None:
        piece = LiveEvent(
            at=datetime.now(UTC),
            turn=self._request.turn,
            kind="text",
            text=words,
            status="running",
            data={"attempt": activity.info().attempt},
        )
        if self._topic is not None:
            # The first words of a slow reply go as they come; later ones in batches.
            self._topic.publish(piece, force_flush=not self._first_sent)
            self._first_sent = True
        else:
            self._held.append(piece)

    @property
    def sent(self) -> bool:
        """Whether any words went to the run (or will, with the last batch)."""
        return self._client is not None

    async def __aexit__(self, *exc: object) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()  # whole within the first batch: nothing is sent
            with contextlib.suppress(asyncio.CancelledError):
                await self._opening
        if self._client is not None:
            await self._client.__aexit__(*exc)  # the last batch
