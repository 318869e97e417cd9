"""Model routes: `provider:model` strings that say which model to call and where."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from durable_agents.errors import InvalidRoute

Wire = Literal["openai", "anthropic"]
# Providers every worker knows; any other name is a model server the worker's operators
# (DURABLE_AGENTS_MODEL_PROVIDERS) or a plugin (AgentSet(providers=...)) named.
BUILTIN: dict[str, Wire | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    # Any server of that wire format, its base URL in the route (checked against the
    # worker's DURABLE_AGENTS_MODEL_ENDPOINTS).
    "openai-compatible": "openai",
    "anthropic-compatible": "anthropic",
    # In-process models the worker was given (durable_agents.testing.ScriptedModel): no HTTP.
    "scripted": None,
}
PROVIDERS = tuple(BUILTIN)
PROVIDER_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
# The base URL needs a path (e.g. /v1) so that a model name may itself contain colons.
_COMPATIBLE = re.compile(r"^(https?://[^/\s]+/[^:\s]*):(.+)$")
_WITH_URL = ("openai-compatible", "anthropic-compatible")


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    base_url: str | None = None  # in the route (…-compatible), or the named provider's
    wire: Wire | None = None  # None: in-process (scripted), or a name not resolved yet
    named: bool = False  # a provider configured by name (resolved by `resolve`)

    @property
    def wire_format(self) -> Wire:
        return self.wire or "openai"


class ModelProvider(BaseModel):
    """A model server reached under a name of your choosing: routes `<name>:<model>` go to
    `base_url` in the `wire` format (OpenAI Chat Completions or Anthropic Messages), with the
    key in the variable `api_key_env` (none: the server takes any key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wire: Literal["openai", "anthropic"]
    base_url: str = Field(pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_route(route: str) -> Route:
    """`openai:gpt-4.1`, `anthropic:claude-sonnet-4-5`, `gateway:gpt-4.1` (a provider named in
    configuration), `openai-compatible:http://127.0.0.1:11434/v1:llama3.1:8b`,
    `scripted:invoice`. Only the form is checked here (workflow code parses routes too): whether
    a named provider exists is the worker's to say (`resolve`)."""
    provider, sep, rest = route.partition(":")
    if not sep or not rest.strip() or not PROVIDER_NAME.fullmatch(provider):
        raise InvalidRoute(
            f"model route {route!r} is not 'provider:model' (a provider is lowercase letters, "
            f"digits and '-'); built in: {', '.join(PROVIDERS)}"
        )
    if provider in _WITH_URL:
        match = _COMPATIBLE.match(rest)
        if not match:
            raise InvalidRoute(
                f"model route {route!r}: write {provider}:<base_url with path>:<model>, "
                f"e.g. {provider}:http://127.0.0.1:11434/v1:llama3.1"
            )
        return Route(provider, match.group(2), match.group(1), BUILTIN[provider])
    if provider in BUILTIN:
        return Route(provider, rest, None, BUILTIN[provider])
    return Route(provider, rest, named=True)


def resolve_route(route: Route, providers: Mapping[str, ModelProvider]) -> Route:
    """The route with its named provider's address and wire format, or InvalidRoute saying
    which providers this worker (or client) knows and where one is named."""
    if not route.named:
        return route
    found = providers.get(route.provider)
    if found is None:
        known = ", ".join(sorted(providers)) or "none"
        raise InvalidRoute(
            f"model route {route.provider + ':' + route.model!r}: "
            f"no model provider {route.provider!r} here (named ones: {known}; built in: "
            f"{', '.join(PROVIDERS)}): name it in DURABLE_AGENTS_MODEL_PROVIDERS, or install the "
            "plugin that declares it"
        )
    return Route(route.provider, route.model, found.base_url.rstrip("/"), found.wire, named=True)


# Where a conversation may be sent when a route names its own address (…-compatible) or a plugin
# names a provider: the worker's own machine, unless DURABLE_AGENTS_MODEL_ENDPOINTS lists
# others. (Providers the worker's own settings name are its operators' choice: allowed.)
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
    if route.base_url is None or not (route.provider in _WITH_URL or route.named):
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


def checked_route(
    text: str,
    plugins: Mapping[str, ModelProvider],
    operators: Mapping[str, ModelProvider],
    allowed: tuple[str, ...],
) -> Route:
    """The route resolved and allowed, or InvalidRoute: a provider the worker's operators name
    (`operators`, DURABLE_AGENTS_MODEL_PROVIDERS) is theirs to trust; an address a route or a
    plugin names must be an allowed model endpoint."""
    route = resolve_route(parse_route(text), {**plugins, **operators})
    if not (route.named and route.provider in operators):
        check_endpoint(route, allowed)
    return route
