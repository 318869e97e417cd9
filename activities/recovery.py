"""The `recover_conversation` activity: a conversation carried by reference, written back into
the message store from the histories of the runs that carried it.

A run that continued as new names the conversation so far by its chain head only
(`Stored.base`). Its content is in earlier runs' histories: every message entered one of them
as content once (a run's input, a `call_llm` request's tail or reply, a `run_tool` or
`summarize` result). If the store lost it (a wiped disk, a new machine), this activity reads
those histories, newest first, writes every message it finds with the chain links the requests
imply, and stops as soon as the store holds the whole conversation again. Large tool results
kept only in the store (`BlobRef`) are not in history: the model reads their preview, as it
does when a model call finds them gone.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import DataConverter

from durable_agents._vocab import chain
from durable_agents._vocab.names import CALL_LLM, RUN_TOOL, SUMMARIZE
from durable_agents._vocab.schemas import (
    AgentRun,
    ConversationRef,
    LLMReply,
    LLMRequest,
    Message,
    RecoverRequest,
    SummarizeRequest,
    Summary,
    ToolRequest,
    ToolResult,
)
from durable_agents.activities.store import Link, MessageStore, get_store

INPUTS: dict[str, type] = {
    CALL_LLM: LLMRequest,
    RUN_TOOL: ToolRequest,
    SUMMARIZE: SummarizeRequest,
}
RESULTS: dict[str, type] = {CALL_LLM: LLMReply, RUN_TOOL: ToolResult, SUMMARIZE: Summary}


class Found:
    """Messages (by hash) and chain links found in histories."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.links: list[Link] = []

    def message(self, message: Message) -> str:
        h = chain.message_hash(message)
        self.objects[h] = chain.encode_message(message)
        return h

    def chain(self, root: str | None, messages: list[tuple[str, Message | None]]) -> str | None:
        """Links for `messages` after `root`; the head after the last one."""
        head = root
        for h, message in messages:
            if message is not None:
                self.message(message)
            new = chain.link(head, h)
            self.links.append((new, head, h))
            head = new
        return head

    def reference(self, ref: ConversationRef) -> str | None:
        return self.chain(ref.base, [(t.hash, t.message) for t in ref.tail])


async def _decode(converter: DataConverter, payloads: Payloads, kind: type) -> Any:
    return (await converter.decode(list(payloads.payloads), [kind]))[0]


async def collect(converter: DataConverter, events: list[HistoryEvent], found: Found) -> str:
    """What one run's history holds; the id of the run it continued (empty for the first)."""
    scheduled: dict[int, tuple[str, Any]] = {}
    previous = ""
    for e in events:
        if e.HasField("workflow_execution_started_event_attributes"):
            started = e.workflow_execution_started_event_attributes
            previous = started.continued_execution_run_id
            run: AgentRun = await _decode(converter, started.input, AgentRun)
            carried = run.carried
            if carried is not None:
                if carried.store.first is not None:
                    found.message(carried.store.first)
                found.chain(
                    carried.store.base, [(chain.message_hash(m), m) for m in carried.messages]
                )
        elif e.HasField("activity_task_scheduled_event_attributes"):
            attrs = e.activity_task_scheduled_event_attributes
            kind = attrs.activity_type.name
            if kind not in INPUTS:
                continue
            request = await _decode(converter, attrs.input, INPUTS[kind])
            head: Any = None
            if isinstance(request, LLMRequest | SummarizeRequest):
                if request.conversation is not None:
                    head = found.reference(request.conversation)
                for m in request.messages:
                    found.message(m)
            scheduled[e.event_id] = (kind, head if kind != RUN_TOOL else request)
        elif e.HasField("activity_task_completed_event_attributes"):
            attrs_c = e.activity_task_completed_event_attributes
            if attrs_c.scheduled_event_id not in scheduled:
                continue
            kind, context = scheduled[attrs_c.scheduled_event_id]
            result = await _decode(converter, attrs_c.result, RESULTS[kind])
            if isinstance(result, LLMReply):
                found.chain(context, [(chain.message_hash(result.message), result.message)])
            elif isinstance(result, Summary):
                found.message(Message(role="user", content=result.text))
            elif isinstance(result, ToolResult) and context.result is not None:
                found.message(chain.tool_message(context.result.tool_call_id, context.tool, result))
    return previous


async def recover(
    request: RecoverRequest, converter: DataConverter, fetch: Any, store: MessageStore
) -> bool:
    """Walk the chain of runs back from `request.run_id` until the store holds the whole
    conversation; whether it does. `fetch(run_id)` returns a run's history events."""
    if await complete(store, request):
        return True
    run_id = request.run_id
    while run_id:
        found = Found()
        run_id = await collect(converter, await fetch(run_id), found)
        await store.put_all(found.objects, found.links)
        activity.heartbeat(run_id)
        if await complete(store, request):
            return True
    return False


async def complete(store: MessageStore, request: RecoverRequest) -> bool:
    """Whether the store holds the conversation's links and every message of it."""
    hashes = await store.walk(request.head, request.length)
    if hashes is None:
        return False
    return len(await store.get(hashes)) == len(set(hashes))


@activity.defn
async def recover_conversation(request: RecoverRequest) -> bool:
    """Write the conversation `request` names back into the message store from the earlier
    runs' histories; whether the store holds all of it now."""
    client = activity.client()

    async def fetch(run_id: str) -> list[HistoryEvent]:
        handle = client.get_workflow_handle(request.workflow_id, run_id=run_id)
        return list((await handle.fetch_history()).events)

    return await recover(request, client.data_converter, fetch, get_store())
