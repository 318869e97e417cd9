"""A reading agent for long runs: many turns of large, read-only tool results.

It exercises what keeps history linear (the conversation by reference, large results by
reference, continue-as-new by size): `reader` reads large results in full, `skimmer` reads only
their previews, and reads as local activities.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, Field

from durable_agents import AgentSpec
from sim.agents.toolbox import read_document, send_email


class ReaderInput(BaseModel):
    turns: int = Field(default=3, ge=1, le=10_000)
    chars: int = Field(default=2000, ge=0, le=20_000_000)
    per_turn: int = Field(default=1, ge=1, le=50)
    email_at: int | None = Field(default=None, ge=0)  # documents read before a gated email
    arg_chars: int | None = Field(default=None, ge=1)  # pads one call's arguments (too large)


READER = AgentSpec(
    name="reader",
    version="1.0.0",
    description="Reads the given number of wiki documents and reports how much it read.",
    system_prompt="Read the documents the input asks for with read_document, then report.",
    model_route=("sim-openai:reader",),
    tools=(read_document, send_email),
    input_model=ReaderInput,
    max_turns=10_001,
    max_tool_errors=10,
)

SKIMMER = replace(
    READER,
    name="skimmer",
    description="Like reader, but reads only a preview of large documents (as local activities).",
    model_route=("sim-openai:skimmer",),
    tools=(replace(read_document, local=True), send_email),
    large_results="preview",
    preview_chars=300,
)
