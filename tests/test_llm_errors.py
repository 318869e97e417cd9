"""The real `call_llm` activity against the sim's real HTTP replies, through the real SDKs.

Each injected fault must come out of the activity as an ApplicationError of one taxonomy type
(durable_agents/_vocab/failures.py) with the right retryability, so the workflow can choose
its strategy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import LLMReply, LLMRequest, Message
from durable_agents.activities import llm
from durable_agents.activities.llm import call_llm
from sim.agents.onboarding import ONBOARDING
from sim.runner import SimServer
from tests.helpers import hire

ROUTES = ["sim-openai:onboarding", "sim-anthropic:onboarding"]
PROVIDER_OF = {"sim-openai:onboarding": "sim-openai", "sim-anthropic:onboarding": "sim-anthropic"}

pytestmark = pytest.mark.usefixtures("sim")


def request(route: str, fault: str | None = None, **data: Any) -> LLMRequest:
    """The first turn of an onboarding run, as the agent workflow would send it."""
    task = ONBOARDING.task_message("", hire(**data))
    return LLMRequest(
        route=route,
        system=ONBOARDING.system_prompt,
        messages=[Message(role="user", content=task)],
        tools=[t.schema() for t in ONBOARDING.tools],
        max_tokens=ONBOARDING.max_tokens,
        agent=ONBOARDING.name,
        turn=1,
        extra_headers={"x-sim-fault": fault} if fault else {},
    )


def environment(
    start_to_close: float = 10.0, heartbeat: float | None = None
) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        start_to_close_timeout=timedelta(seconds=start_to_close),
        heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else None,
    )
    return env


async def failure(req: LLMRequest, env: ActivityEnvironment | None = None) -> ApplicationError:
    """Run call_llm and return the ApplicationError it raises (failing if it does not)."""
    with pytest.raises(ApplicationError) as raised:
        await (env or environment()).run(call_llm, req)
    return raised.value


def assert_kind(err: ApplicationError, kind: str, *, retryable: bool) -> None:
    assert err.type == kind, f"expected {kind}, got {err.type}: {err.message}"
    assert err.non_retryable is (not retryable), err.message


# ---- the happy path ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_reply_with_a_tool_call(route: str) -> None:
    new_hire = hire()
    req = request(route, employee_id=new_hire["employee_id"])
    reply: LLMReply = await environment().run(call_llm, req)

    assert reply.provider == PROVIDER_OF[route]
    assert reply.model == "onboarding"
    assert reply.finish_reason in ("tool_calls", "tool_use")
    assert reply.message.role == "assistant"
    [call] = reply.message.tool_calls
    assert call.id
    assert call.name == "create_mailbox"
    assert call.arguments == {
        "employee_id": new_hire["employee_id"],
        "full_name": new_hire["full_name"],
    }
    assert reply.usage.input_tokens > 0
    assert reply.usage.output_tokens > 0


@pytest.mark.parametrize("route", ROUTES)
async def test_refusal_and_unknown_tool_are_replies_not_failures(route: str) -> None:
    """The workflow handles these with the model; the activity just reports them."""
    refused = await environment().run(call_llm, request(route, "refusal"))
    assert refused.finish_reason == "refusal"
    assert "can't help" in refused.message.content
    assert not refused.message.tool_calls

    odd = await environment().run(call_llm, request(route, "unknown_tool"))
    [call] = odd.message.tool_calls
    assert call.name == "launch_rocket"
    assert call.arguments == {"target": "moon"}


# ---- retryable: wait, or fall back -------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("seconds", [2, 0.5])
async def test_429_is_rate_limited_with_the_servers_delay(route: str, seconds: float) -> None:
    err = await failure(request(route, f"rate_limit; retry_after={seconds}"))
    assert_kind(err, f.RATE_LIMITED, retryable=True)
    assert "429" in err.message
    asked = timedelta(seconds=seconds)
    assert err.next_retry_delay is not None
    assert asked <= err.next_retry_delay <= asked * 1.2


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("fault", "status"),
    [("server_error", 500), ("unavailable", 503)],
)
async def test_5xx_is_provider_unavailable(route: str, fault: str, status: int) -> None:
    err = await failure(request(route, fault))
    assert_kind(err, f.PROVIDER_UNAVAILABLE, retryable=True)
    assert str(status) in err.message
    assert err.next_retry_delay is None  # no Retry-After: Temporal's backoff applies


@pytest.mark.parametrize(("route", "status"), [(ROUTES[0], 503), (ROUTES[1], 529)])
async def test_overloaded_is_provider_unavailable(route: str, status: int) -> None:
    """Anthropic says 529 overloaded_error; OpenAI says 503."""
    err = await failure(request(route, "overloaded"))
    assert_kind(err, f.PROVIDER_UNAVAILABLE, retryable=True)
    assert f"HTTP {status}" in err.message


@pytest.mark.parametrize(("route", "limit"), [(ROUTES[0], 1.5), (ROUTES[1], 1.5), (ROUTES[0], 0.6)])
async def test_a_reply_slower_than_start_to_close_is_a_timeout(route: str, limit: float) -> None:
    """The client gives up before Temporal would, so the failure is classified, not opaque."""
    began = time.monotonic()
    err = await failure(request(route, "slow; seconds=2"), environment(start_to_close=limit))
    elapsed = time.monotonic() - began
    assert_kind(err, f.TIMEOUT, retryable=True)
    assert "did not answer in time" in err.message
    assert elapsed < limit, f"gave up after {elapsed:.2f}s, past the {limit}s start-to-close"


# ---- non-retryable: compact, repair, or park ---------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_401_is_authentication_failed(route: str) -> None:
    err = await failure(request(route, "auth"))
    assert_kind(err, f.AUTHENTICATION_FAILED, retryable=False)
    assert "401" in err.message


@pytest.mark.parametrize("route", ROUTES)
async def test_context_length_400_is_context_window_exceeded(route: str) -> None:
    err = await failure(request(route, "context_length"))
    assert_kind(err, f.CONTEXT_WINDOW_EXCEEDED, retryable=False)
    assert "400" in err.message


@pytest.mark.parametrize("route", ROUTES)
async def test_malformed_tool_json_names_the_tool_and_the_problem(route: str) -> None:
    err = await failure(request(route, "malformed_tool_json"))
    assert_kind(err, f.MALFORMED_MODEL_OUTPUT, retryable=False)
    # The message goes back to the model as a repair request: it must say what to fix.
    assert "'create_mailbox'" in err.message
    assert "not valid JSON" in err.message or "must be a JSON object" in err.message
    assert '{"employee_id"' in err.message  # quotes the broken arguments


@pytest.mark.parametrize("route", ROUTES)
async def test_other_400s_and_404s_are_invalid_requests(route: str) -> None:
    provider = PROVIDER_OF[route]
    unknown_model = request(route.replace("onboarding", "no-such-script"))
    err = await failure(unknown_model)
    assert_kind(err, f.INVALID_REQUEST, retryable=False)
    assert "404" in err.message

    err = await failure(request(route, "no_such_fault"))  # the sim answers 400
    assert_kind(err, f.INVALID_REQUEST, retryable=False)
    assert f"{provider} answered HTTP 400" in err.message


@pytest.mark.parametrize("route", ["gemini:pro", "sim-openai", "openai-compatible:llama3.1"])
async def test_an_unusable_route_is_invalid_request(route: str) -> None:
    err = await failure(request(route))
    assert_kind(err, f.INVALID_REQUEST, retryable=False)
    assert repr(route) in err.message


@pytest.fixture
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    yield
    monkeypatch.undo()


@pytest.mark.usefixtures("no_provider_keys")
@pytest.mark.parametrize(
    ("route", "variable"),
    [("openai:gpt-4.1", "OPENAI_API_KEY"), ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")],
)
async def test_a_missing_provider_key_is_authentication_failed(route: str, variable: str) -> None:
    err = await failure(request(route))
    assert_kind(err, f.AUTHENTICATION_FAILED, retryable=False)
    assert variable in err.message


async def test_openai_compatible_servers_never_get_the_workers_openai_key(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base URL comes from the run's input: the worker's key must not travel to it."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker-secret")
    keys: list[str] = []
    real = llm._openai_client

    def spy(base_url: str | None, key: str, loop: int) -> Any:
        keys.append(key)
        return real(base_url, key, loop)

    monkeypatch.setattr(llm, "_openai_client", spy)
    try:
        reply = await environment().run(
            call_llm, request(f"openai-compatible:{sim.url}/v1:onboarding")
        )
    finally:
        monkeypatch.undo()
    assert reply.provider == "openai-compatible"
    assert reply.message.tool_calls[0].name == "create_mailbox"
    assert keys and "sk-worker-secret" not in keys


# ---- liveness ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_heartbeats_while_a_slow_call_runs(route: str) -> None:
    beats: list[tuple[Any, ...]] = []
    env = environment(start_to_close=10, heartbeat=0.4)  # beats every 0.2 s
    env.on_heartbeat = lambda *details: beats.append(details)
    reply = await env.run(call_llm, request(route, "slow; seconds=0.7"))
    assert reply.message.tool_calls[0].name == "create_mailbox"
    assert len(beats) >= 2
    assert beats[0] == ("waiting for onboarding",)
