"""Pure units: model-route parsing and the Retry-After reading behind RateLimited delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from durable_agents._routes import PROVIDERS, ModelProvider, Route, parse_route, resolve_route
from durable_agents.activities.providers.common import MAX_RETRY_AFTER, jittered, retry_after
from durable_agents.errors import InvalidRoute

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)

# ---- parse_route -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("openai:gpt-4.1", Route("openai", "gpt-4.1", None, "openai")),
        ("anthropic:claude-sonnet-4-5", Route("anthropic", "claude-sonnet-4-5", None, "anthropic")),
        # Any other name is a provider the configuration names: only its form is checked here.
        ("gateway:gpt-4.1", Route("gateway", "gpt-4.1", named=True)),
        ("sim-openai:onboarding", Route("sim-openai", "onboarding", named=True)),
        # Everything after the first colon is the model, colons included.
        (
            "openai:ft:gpt-4.1:acme::abc123",
            Route("openai", "ft:gpt-4.1:acme::abc123", None, "openai"),
        ),
        (
            "openai-compatible:http://127.0.0.1:11434/v1:llama3.1:8b",
            Route("openai-compatible", "llama3.1:8b", "http://127.0.0.1:11434/v1", "openai"),
        ),
        (
            "anthropic-compatible:https://llm.internal.example/api/v1:claude",
            Route(
                "anthropic-compatible", "claude", "https://llm.internal.example/api/v1", "anthropic"
            ),
        ),
    ],
)
def test_parse_route(route: str, expected: Route) -> None:
    assert parse_route(route) == expected


def test_every_built_in_provider_parses_and_has_a_wire_format() -> None:
    for provider in PROVIDERS:
        with_url = provider.endswith("-compatible")
        route = f"{provider}:http://127.0.0.1:8000/v1:m" if with_url else f"{provider}:m"
        parsed = parse_route(route)
        assert (parsed.provider, parsed.model, parsed.named) == (provider, "m", False)
        if provider != "scripted":
            expected = "anthropic" if "anthropic" in provider else "openai"
            assert parsed.wire_format == expected
        assert (parsed.base_url is not None) == with_url


def test_a_named_provider_resolves_from_configuration() -> None:
    gateway = ModelProvider(wire="anthropic", base_url="https://llm.corp.example/api/")
    route = resolve_route(parse_route("gateway:claude"), {"gateway": gateway})
    assert (route.base_url, route.wire_format, route.model) == (
        "https://llm.corp.example/api",
        "anthropic",
        "claude",
    )
    with pytest.raises(InvalidRoute, match="no model provider 'other' here .named ones: gateway"):
        resolve_route(parse_route("other:claude"), {"gateway": gateway})


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ("gpt-4.1", "is not 'provider:model'"),
        ("openai:", "is not 'provider:model'"),
        ("openai:   ", "is not 'provider:model'"),
        ("", "is not 'provider:model'"),
        ("OpenAI:gpt-4.1", "is not 'provider:model'"),  # a provider's name is lowercase
        (":gpt-4.1", "is not 'provider:model'"),
        ("my gateway:gpt-4.1", "is not 'provider:model'"),
        # …-compatible needs a base URL with a path, then a model.
        ("openai-compatible:llama3.1", "base_url with path"),
        ("openai-compatible:http://127.0.0.1:11434:llama3.1", "base_url with path"),
        ("openai-compatible:http://127.0.0.1:11434/v1:", "base_url with path"),
        ("anthropic-compatible:ftp://host/v1:claude", "base_url with path"),
    ],
)
def test_parse_route_rejects(route: str, says: str) -> None:
    with pytest.raises(InvalidRoute, match="model route") as raised:
        parse_route(route)
    assert says in str(raised.value)
    if "provider:model" in says:
        assert all(p in str(raised.value) for p in PROVIDERS)  # the message lists the built-ins


# ---- retry_after -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ({}, None),
        ({"retry-after": "2"}, timedelta(seconds=2)),
        ({"retry-after": "1.5"}, timedelta(seconds=1.5)),
        ({"retry-after": "0"}, timedelta(0)),
        # retry-after-ms is more precise and wins over Retry-After.
        ({"retry-after-ms": "2500", "retry-after": "3"}, timedelta(milliseconds=2500)),
        ({"retry-after-ms": "750"}, timedelta(milliseconds=750)),
        # An unreadable retry-after-ms falls back to Retry-After.
        ({"retry-after-ms": "soon", "retry-after": "3"}, timedelta(seconds=3)),
        ({"retry-after-ms": "nan", "retry-after": "3"}, timedelta(seconds=3)),
        # HTTP-dates, relative to `now`; one in the past means "now".
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, timedelta(seconds=30)),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, timedelta(seconds=30)),
        ({"retry-after": "Wed, 21 Oct 2015 07:00:00 GMT"}, timedelta(0)),
        # Garbage is no delay at all (Temporal's backoff applies), never an exception.
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, None),
        ({"retry-after": "Mon, 01 Jan 99999 00:00:00 GMT"}, None),
        # Out of range is bounded, never negative and never an overflow.
        ({"retry-after": "-5"}, timedelta(0)),
        ({"retry-after": "86400"}, MAX_RETRY_AFTER),
        ({"retry-after": "1e15"}, MAX_RETRY_AFTER),
        ({"retry-after": "inf"}, MAX_RETRY_AFTER),
        ({"retry-after-ms": "1e300"}, MAX_RETRY_AFTER),
        ({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}, MAX_RETRY_AFTER),
    ],
)
def test_retry_after(headers: dict[str, str] | None, expected: timedelta | None) -> None:
    assert retry_after(headers, now=NOW) == expected


def test_retry_after_reads_real_response_headers_case_insensitively() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == timedelta(seconds=7)
    assert retry_after(httpx.Headers({"Retry-After-Ms": "120"})) == timedelta(milliseconds=120)


def test_retry_after_http_date_defaults_to_the_current_time() -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    delay = retry_after({"retry-after": soon})
    assert delay is not None
    assert timedelta(seconds=55) <= delay <= timedelta(seconds=60)


def test_jitter_adds_at_most_a_fifth_and_respects_the_bound() -> None:
    base = timedelta(seconds=10)
    delays = [jittered(base) for _ in range(200)]
    assert all(base <= d <= base * 1.2 for d in delays)
    assert len(set(delays)) > 1  # actually jittered
    capped = [jittered(timedelta(days=1)) for _ in range(20)]
    assert all(MAX_RETRY_AFTER <= d <= MAX_RETRY_AFTER * 1.2 for d in capped)
