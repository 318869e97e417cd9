"""Model routes: `provider:model` strings that say which model to call and where."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Provider = Literal[
    "openai", "anthropic", "openai-compatible", "sim-openai", "sim-anthropic", "scripted"
]
PROVIDERS: tuple[Provider, ...] = (
    "openai",
    "anthropic",
    "openai-compatible",
    "sim-openai",
    "sim-anthropic",
    # In-process models the worker was given (durable_agents.testing.ScriptedModel): no HTTP.
    "scripted",
)
# The base URL needs a path (e.g. /v1) so that a model name may itself contain colons.
_COMPATIBLE = re.compile(r"^(https?://[^/\s]+/[^:\s]*):(.+)$")


class InvalidRoute(ValueError):
    """A model route that cannot be parsed."""


@dataclass(frozen=True)
class Route:
    provider: Provider
    model: str
    base_url: str | None = None  # only for openai-compatible

    @property
    def wire_format(self) -> Literal["openai", "anthropic"]:
        return "anthropic" if self.provider in ("anthropic", "sim-anthropic") else "openai"


def parse_route(route: str) -> Route:
    """`openai:gpt-4.1`, `anthropic:claude-sonnet-4-5`, `sim-openai:onboarding`,
    `openai-compatible:http://127.0.0.1:11434/v1:llama3.1:8b`, `scripted:invoice`."""
    provider, sep, rest = route.partition(":")
    if not sep or not rest.strip():
        raise InvalidRoute(
            f"model route {route!r} is not 'provider:model'; providers: {', '.join(PROVIDERS)}"
        )
    if provider == "openai-compatible":
        match = _COMPATIBLE.match(rest)
        if not match:
            raise InvalidRoute(
                f"model route {route!r}: write openai-compatible:<base_url with path>:<model>, "
                "e.g. openai-compatible:http://127.0.0.1:11434/v1:llama3.1"
            )
        return Route("openai-compatible", match.group(2), match.group(1))
    for known in PROVIDERS:
        if provider == known:
            return Route(known, rest)
    raise InvalidRoute(
        f"model route {route!r}: unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}"
    )
