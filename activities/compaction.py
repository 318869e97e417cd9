"""The `summarize` activity: compact older turns of a conversation into a summary.

It asks the run's own model (same route, same provider retries off) and returns only the summary,
so the workflow can replace the turns it summarised and keep the conversation within the window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from temporalio import activity

from durable_agents._routes import ModelProvider
from durable_agents._vocab.schemas import LLMRequest, Message, SummarizeRequest, Summary
from durable_agents.activities.conversation import resolve, store_message
from durable_agents.activities.llm import LocalModel, Models, complete

SUMMARIZE_SYSTEM = (
    "You compact an agent's conversation. Keep every fact the agent will need: ids, addresses, "
    "amounts, dates, decisions, tool results and open questions. Drop pleasantries. Answer with "
    "the summary only."
)


def render(messages: list[Message]) -> str:
    """The messages as plain lines a model can summarise."""
    lines = []
    for m in messages:
        if m.role == "tool":
            lines.append(f"tool {m.name or m.tool_call_id}: {m.content}")
            continue
        calls = ", ".join(
            f"{c.name}({json.dumps(c.arguments, sort_keys=True)})" for c in m.tool_calls
        )
        said = m.content + (f" [calls: {calls}]" if calls else "")
        lines.append(f"{m.role}: {said}")
    return "\n".join(lines)


@activity.defn
async def summarize(request: SummarizeRequest) -> Summary:
    """Summarise the given messages with the run's model."""
    return await _summarize(request, Models())


class Summaries:
    """The `summarize` activity of a worker with in-process models (`scripted:<name>`): a
    scripted agent's conversation is compacted by its own script, as a provider's by its model."""

    def __init__(
        self, models: Iterable[LocalModel] = (), providers: Mapping[str, ModelProvider] = {}
    ) -> None:
        self._models = Models({m.name: m for m in models}, dict(providers))

    @activity.defn(name="summarize")
    async def summarize(self, request: SummarizeRequest) -> Summary:
        """Summarise the given messages with the run's model."""
        return await _summarize(request, self._models)


async def _summarize(request: SummarizeRequest, models: Models) -> Summary:
    messages = request.messages
    if request.conversation is not None:
        resolved = await resolve(LLMRequest(route=request.route, conversation=request.conversation))
        messages = resolved.request.messages
    reply = await complete(
        LLMRequest(
            route=request.route,
            system=SUMMARIZE_SYSTEM,
            messages=[Message(role="user", content=render(messages))],
            max_tokens=request.max_tokens,
            agent=request.agent,
            turn=request.turn,
        ),
        models,
    )
    if request.conversation is not None:
        await store_message(Message(role="user", content=reply.message.content))
    return Summary(text=reply.message.content, usage=reply.usage, model=reply.model)
