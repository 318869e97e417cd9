"""The provider-neutral conversation that every script reads, and the reply it writes.

OpenAI and Anthropic requests are both normalized into this shape, so a script is written once
and behaves identically behind either wire format. Scripts stay stateless: everything they need
to decide the next step is in the conversation itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool"]


@dataclass
class ToolCall:
    """A tool call; `args` is a dict normally, a raw string when it is (deliberately) malformed."""

    name: str
    args: Any = field(default_factory=dict)
    id: str = ""


@dataclass
class Turn:
    """One turn: user text, assistant text plus tool calls, or one tool result."""

    role: Role
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    def value(self) -> Any:
        """A tool result parsed as JSON, falling back to the raw text."""
        try:
            return json.loads(self.text)
        except ValueError:
            return self.text


@dataclass
class Conversation:
    """System prompt plus turns, with the lookups scripts need."""

    system: str = ""
    turns: list[Turn] = field(default_factory=list)

    def link_tool_names(self) -> None:
        """Fill in tool names on results: neither wire format repeats them there."""
        names = {c.id: c.name for t in self.turns for c in t.tool_calls}
        for turn in self.turns:
            if turn.role == "tool" and not turn.name:
                turn.name = names.get(turn.tool_call_id or "", "")

    def expand_summaries(self, header: str) -> None:
        """Read a compaction summary back as the turns it stands for, as a model would."""
        turns: list[Turn] = []
        for turn in self.turns:
            if turn.role != "user" or not turn.text.startswith(header):
                turns.append(turn)
                continue
            for line in turn.text[len(header) :].splitlines():
                item = line.removeprefix("- ")
                if item.startswith("tool "):
                    name, _, content = item[len("tool ") :].partition(": ")
                    turns.append(Turn("tool", content, name=name))
                elif item.startswith("assistant"):
                    turns.append(Turn("assistant", item.partition(": ")[2]))
        self.turns = turns

    def user_texts(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "user"]

    def first_user_text(self) -> str:
        texts = self.user_texts()
        return texts[0] if texts else ""

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def assistant_count(self) -> int:
        return sum(1 for t in self.turns if t.role == "assistant")

    def results(self, name: str | None = None) -> list[Turn]:
        """Tool results, optionally only those of one tool, oldest first."""
        return [t for t in self.turns if t.role == "tool" and (name is None or t.name == name)]


@dataclass
class Reply:
    """What a script answers: final text, tool calls, or (under a fault) a refusal."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str | None = None
    cut: bool = False  # streamed, it stops half-way (the cut_stream fault)

    def output_text(self) -> str:
        """Everything the reply 'generates', for counting output tokens."""
        parts = [self.text, self.refusal or ""]
        parts += [c.name + json.dumps(c.args) for c in self.tool_calls]
        return "".join(parts)


def first_json_object(text: str) -> dict[str, Any]:
    """The first JSON object embedded anywhere in `text` (the task input), or {}."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return {}


def is_error(turn: Turn) -> bool:
    """Whether a tool result reports a failure that the model should react to."""
    if turn.is_error:
        return True
    value = turn.value()
    if isinstance(value, dict):
        return value.get("error") is not None
    return "error" in str(value).lower()
