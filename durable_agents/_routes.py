"""Model routes: `provider:model` strings that say which model to call and where."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from durable_agents.errors import InvalidRoute

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


# Where a conversation may be sent when a route names its own address (openai-compatible): the
# worker's own machine, unless DURABLE_AGENTS_MODEL_ENDPOINTS lists others.
LOOPBACK_ENDPOINTS = ("http://127.0.0.1", "http://localhost", "http://[::1]")


class EndpointNotAllowed(InvalidRoute):
    """A route whose base URL is not on the allowlist of model endpoints."""


def allowed_endpoints(setting: str | None) -> tuple[str, ...]:
    """DURABLE_AGENTS_MODEL_ENDPOINTS (comma-separated base URLs, e.g.
    `https://llm.internal.example.com/v1,http://127.0.0.1:11434`), else the loopback ones."""
    listed = tuple(u.strip() for u in (setting or "").split(",") if u.strip())
    return listed or LOOPBACK_ENDPOINTS


def check_endpoint(route: Route, allowed: tuple[str, ...]) -> None:
    """EndpointNotAllowed unless the route's base URL is under one of `allowed`: the same
    scheme and host, the same port if the entry names one, and a path under the entry's.
    Whoever starts a run chooses its route; the conversation, tool results included, goes
    only where the worker's operators said it may."""
    if route.provider != "openai-compatible" or route.base_url is None:
        return
    url = urlsplit(route.base_url)
    for entry in allowed:
        want = urlsplit(entry)
        same = (url.scheme, url.hostname) == (want.scheme, want.hostname)
        port = want.port is None or url.port == want.port
        path = want.path.rstrip("/")
        if same and port and (url.path == path or url.path.startswith(path + "/")):
            return
    raise EndpointNotAllowed(
        f"model route {route.provider}:{route.base_url}:{route.model}: {route.base_url} is not "
        f"an allowed model endpoint ({', '.join(allowed)}); the worker's operators add it to "
        "DURABLE_AGENTS_MODEL_ENDPOINTS"
    )
