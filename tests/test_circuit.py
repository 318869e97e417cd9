"""The circuit breaker per provider and model (activities/circuit.py).

The state machine runs on a fake monotonic clock; one test drives it through the real `call_llm`
activity against the sim, proving that an open circuit fails fast without reaching the sim.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f
from durable_agents.activities import circuit
from durable_agents.activities.circuit import CircuitKey, CircuitRegistry
from durable_agents.activities.llm import call_llm
from durable_agents.activities.providers.common import error
from durable_agents.settings import Settings, use
from tests.test_llm_errors import ROUTES, assert_kind, environment, failure, request

KEY: CircuitKey = ("sim-openai", "", "onboarding")
THRESHOLD = 3
COOLDOWN = 30.0
NOT_COUNTED = [
    f.INVALID_REQUEST,
    f.MALFORMED_MODEL_OUTPUT,
    f.AUTHENTICATION_FAILED,
    f.CONTEXT_WINDOW_EXCEEDED,
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breakers(clock: FakeClock) -> Iterator[CircuitRegistry]:
    """A fresh registry on the fake clock, installed as the worker's; forgotten afterwards."""
    registry = CircuitRegistry(THRESHOLD, COOLDOWN, clock)
    circuit.reset(registry)
    yield registry
    circuit.reset()


class Provider:
    """A stand-in provider call that counts how often it was actually made."""

    def __init__(self) -> None:
        self.calls = 0

    async def ok(self) -> str:
        self.calls += 1
        return "reply"

    def failing(self, kind: str) -> Any:
        async def call() -> str:
            self.calls += 1
            raise error(kind, f"sim answered with {kind}")

        return call


@pytest.fixture
def provider() -> Provider:
    return Provider()


async def succeed(registry: CircuitRegistry, provider: Provider, key: CircuitKey = KEY) -> None:
    assert await registry.call(key, provider.ok) == "reply"


async def fail(
    registry: CircuitRegistry,
    provider: Provider,
    kind: str = f.PROVIDER_UNAVAILABLE,
    times: int = 1,
) -> None:
    """Calls that reach the provider and fail with `kind` (re-raised untouched)."""
    for _ in range(times):
        before = provider.calls
        with pytest.raises(ApplicationError) as raised:
            await registry.call(KEY, provider.failing(kind))
        assert raised.value.type == kind
        assert provider.calls == before + 1, "the call should have reached the provider"


async def fails_fast(registry: CircuitRegistry, provider: Provider) -> ApplicationError:
    before = provider.calls
    with pytest.raises(ApplicationError) as raised:
        await registry.call(KEY, provider.ok)
    assert provider.calls == before, "an open circuit must not call the provider"
    assert_kind(raised.value, f.PROVIDER_UNAVAILABLE, retryable=False)
    assert "circuit open" in raised.value.message
    return raised.value


def state(registry: CircuitRegistry, key: CircuitKey = KEY) -> str:
    return registry.snapshot()[key].state


# ---- closed -> open ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(f.FALL_BACK))
async def test_opens_after_threshold_consecutive_failures(
    breakers: CircuitRegistry, provider: Provider, kind: str
) -> None:
    await fail(breakers, provider, kind, times=THRESHOLD - 1)
    assert state(breakers) == "closed"
    await fail(breakers, provider, kind)  # the failure that trips it still comes back as it was
    assert state(breakers) == "open"
    await fails_fast(breakers, provider)


async def test_fails_fast_while_open_naming_model_count_and_when(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock
) -> None:
    await fail(breakers, provider, f.TIMEOUT, times=THRESHOLD)
    clock.advance(10)
    err = await fails_fast(breakers, provider)
    assert "sim-openai model 'onboarding'" in err.message
    assert f"{THRESHOLD} consecutive failures" in err.message
    assert "last: Timeout" in err.message
    assert "try again in 20.0s" in err.message
    clock.advance(COOLDOWN - 10 - 0.01)
    err = await fails_fast(breakers, provider)
    assert "try again in 0.0s" in err.message
    snap = breakers.snapshot()[KEY]
    assert snap.rejected_total == 2
    assert snap.opened_total == 1


async def test_a_success_resets_the_count(breakers: CircuitRegistry, provider: Provider) -> None:
    await fail(breakers, provider, times=THRESHOLD - 1)
    await succeed(breakers, provider)
    assert breakers.snapshot()[KEY].consecutive_failures == 0
    await fail(breakers, provider, f.RATE_LIMITED, times=THRESHOLD - 1)
    assert state(breakers) == "closed"
    await succeed(breakers, provider)


@pytest.mark.parametrize("kind", NOT_COUNTED)
async def test_other_failures_neither_count_nor_reset(
    breakers: CircuitRegistry, provider: Provider, kind: str
) -> None:
    await fail(breakers, provider, kind, times=THRESHOLD * 2)
    assert state(breakers) == "closed"
    assert breakers.snapshot()[KEY].consecutive_failures == 0

    await fail(breakers, provider, times=THRESHOLD - 1)
    await fail(breakers, provider, kind)  # the provider answered, but that proves nothing
    assert breakers.snapshot()[KEY].consecutive_failures == THRESHOLD - 1
    await fail(breakers, provider)
    assert state(breakers) == "open"


async def test_unclassified_exceptions_do_not_count(
    breakers: CircuitRegistry, provider: Provider
) -> None:
    async def bug() -> None:
        raise RuntimeError("a bug, not the provider")

    for _ in range(THRESHOLD):
        with pytest.raises(RuntimeError):
            await breakers.call(KEY, bug)
    assert state(breakers) == "closed"


async def test_circuits_are_per_provider_base_url_and_model(
    breakers: CircuitRegistry, provider: Provider
) -> None:
    await fail(breakers, provider, times=THRESHOLD)
    for other in [
        ("sim-anthropic", "", "onboarding"),
        ("sim-openai", "", "refund"),
        ("openai-compatible", "http://127.0.0.1:11434/v1", "onboarding"),
        ("openai-compatible", "http://10.0.0.2:8000/v1", "onboarding"),
    ]:
        await succeed(breakers, provider, other)
        assert state(breakers, other) == "closed"
    assert state(breakers) == "open"


# ---- open -> half-open -> closed or open -------------------------------------------------


async def test_half_open_lets_exactly_one_trial_through(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock
) -> None:
    await fail(breakers, provider, times=THRESHOLD)
    clock.advance(COOLDOWN)
    assert state(breakers) == "half_open"

    release = asyncio.Event()

    async def slow_trial() -> str:
        provider.calls += 1
        await release.wait()
        return "reply"

    before = provider.calls
    trial = asyncio.create_task(breakers.call(KEY, slow_trial))
    await asyncio.sleep(0)
    assert provider.calls == before + 1
    assert breakers.snapshot()[KEY].trial_in_flight
    for _ in range(3):  # concurrent callers while the trial runs
        err = await fails_fast(breakers, provider)
        assert "trial call is in flight" in err.message
    release.set()
    assert await trial == "reply"
    assert state(breakers) == "closed"


async def test_a_successful_trial_closes_it(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock
) -> None:
    await fail(breakers, provider, times=THRESHOLD)
    clock.advance(COOLDOWN)
    await succeed(breakers, provider)
    snap = breakers.snapshot()[KEY]
    assert (snap.state, snap.consecutive_failures, snap.retry_in_seconds) == ("closed", 0, None)
    for _ in range(THRESHOLD * 2):
        await succeed(breakers, provider)
    await fail(breakers, provider, times=THRESHOLD - 1)  # a fresh count: still closed
    assert state(breakers) == "closed"


async def test_a_failed_trial_reopens_it_for_another_cooldown(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock
) -> None:
    await fail(breakers, provider, times=THRESHOLD)
    clock.advance(COOLDOWN + 5)
    await fail(breakers, provider, f.TIMEOUT)  # the trial
    snap = breakers.snapshot()[KEY]
    assert (snap.state, snap.retry_in_seconds, snap.opened_total) == ("open", COOLDOWN, 2)
    err = await fails_fast(breakers, provider)
    assert f"{THRESHOLD + 1} consecutive failures" in err.message
    clock.advance(COOLDOWN - 0.5)
    await fails_fast(breakers, provider)
    clock.advance(0.5)
    await succeed(breakers, provider)  # the next trial
    assert state(breakers) == "closed"


@pytest.mark.parametrize("ending", ["uncounted", "cancelled"])
async def test_a_trial_without_a_verdict_frees_the_slot(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock, ending: str
) -> None:
    await fail(breakers, provider, times=THRESHOLD)
    clock.advance(COOLDOWN)
    if ending == "uncounted":
        await fail(breakers, provider, f.INVALID_REQUEST)
    else:
        task = asyncio.create_task(breakers.call(KEY, asyncio.Event().wait))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    snap = breakers.snapshot()[KEY]
    assert (snap.state, snap.trial_in_flight) == ("half_open", False)
    await succeed(breakers, provider)  # the next caller gets the trial
    assert state(breakers) == "closed"


async def test_calls_from_before_it_opened_do_not_decide_it(
    breakers: CircuitRegistry, provider: Provider, clock: FakeClock
) -> None:
    """A slow call let through while closed must not close (or re-open) it later."""
    release = asyncio.Event()
    outcome: list[str] = []

    async def slow() -> str:
        await release.wait()
        if outcome:
            raise error(outcome[0], "late")
        return "late reply"

    late_success = asyncio.create_task(breakers.call(KEY, slow))
    await asyncio.sleep(0)
    await fail(breakers, provider, times=THRESHOLD)
    release.set()
    assert await late_success == "late reply"
    assert state(breakers) == "open"

    release.clear()
    outcome.append(f.PROVIDER_UNAVAILABLE)
    clock.advance(COOLDOWN)
    late_failure = asyncio.create_task(breakers.call(KEY, slow))  # the trial
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ApplicationError):
        await late_failure
    assert state(breakers) == "open"  # the failed trial re-opened it
    clock.advance(COOLDOWN)
    await succeed(breakers, provider)
    assert state(breakers) == "closed"


# ---- configuration -----------------------------------------------------------------------


async def test_threshold_zero_disables_it(provider: Provider) -> None:
    registry = CircuitRegistry(0, COOLDOWN, FakeClock())
    await fail(registry, provider, times=50)
    await succeed(registry, provider)
    assert registry.snapshot() == {}


def test_defaults_and_settings() -> None:
    circuit.reset()
    with use(Settings()):
        default = circuit.registry()
        assert (default.threshold, default.cooldown) == (5, 30.0)
        assert circuit.registry() is default  # one per worker's settings
    with use(Settings(breaker_threshold=0, breaker_cooldown_seconds=2.5)):
        configured = circuit.registry()
    assert (configured.threshold, configured.cooldown, configured.enabled) == (0, 2.5, False)
    circuit.reset()


def test_snapshot_is_a_read_only_copy(breakers: CircuitRegistry, provider: Provider) -> None:
    breakers.breaker(KEY)
    snap = circuit.snapshot()
    assert set(snap) == {KEY}
    with pytest.raises(AttributeError):
        snap[KEY].state = "open"  # type: ignore[misc]
    snap.clear()
    assert set(circuit.snapshot()) == {KEY}


# ---- through call_llm, against the sim ---------------------------------------------------


@pytest.mark.usefixtures("sim")
@pytest.mark.parametrize("route", ROUTES)
async def test_call_llm_fails_fast_while_open_and_recovers(
    breakers: CircuitRegistry, clock: FakeClock, route: str
) -> None:
    provider, _, model = route.partition(":")
    # A provider by name is keyed by where it is (the sim world's settings name it).
    [server] = [p.base_url for n, p in Settings.from_env().model_providers.items() if n == provider]
    key = (provider, server, model)
    for _ in range(THRESHOLD):
        err = await failure(request(route, "unavailable"))
        assert_kind(err, f.PROVIDER_UNAVAILABLE, retryable=True)
        assert "503" in err.message
    assert state(breakers, key) == "open"

    # The sim counts requests per key: this fault hits only the first request that reaches it.
    counted = f"unavailable; times=1; key={uuid.uuid4().hex}"
    for _ in range(3):
        err = await failure(request(route, counted))
        assert_kind(err, f.PROVIDER_UNAVAILABLE, retryable=False)
        assert f"{provider} model '{model}'" in err.message
        assert f"{THRESHOLD} consecutive failures" in err.message
        assert "failing fast" in err.message

    clock.advance(COOLDOWN)
    err = await failure(request(route, counted))  # the trial: the first to reach the sim
    assert_kind(err, f.PROVIDER_UNAVAILABLE, retryable=True)
    assert "503" in err.message
    assert state(breakers, key) == "open"
    await failure(request(route, counted))  # had this reached the sim, it would have succeeded

    clock.advance(COOLDOWN)
    reply = await environment().run(call_llm, request(route))  # a healthy trial
    assert reply.message.tool_calls[0].name == "create_mailbox"
    assert breakers.snapshot()[key].state == "closed"
    assert (await environment().run(call_llm, request(route))).provider == provider
