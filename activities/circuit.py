"""A circuit breaker per provider and model, one registry per worker process.

When a model keeps failing (ProviderUnavailable, Timeout, RateLimited), every run that uses it
would wait out its own retries before falling back. After `threshold` consecutive such failures
the circuit opens: calls to that model fail fast, without touching the network, with a
non-retryable ProviderUnavailable, so the workflow falls back to the next model of the route at
once. After `cooldown` seconds it is half-open: exactly one trial call goes through (concurrent
callers still fail fast); its success closes the circuit, its failure opens it for another
cool-down.

Only the fall-back kinds count. Other failures (InvalidRequest, MalformedModelOutput,
AuthenticationFailed, ...) say nothing about the provider's health: they neither count nor reset
the count, and a trial ending with one (or cancelled) just frees the trial slot for the next
caller. Outcomes of calls let through before the circuit last changed state are ignored, so a
slow call from before an outage cannot close (or re-open) the circuit behind the trial's back.

State changes happen under a lock and never across an `await`, so one registry serves all the
activities of a worker, whatever loop or thread they run on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f
from durable_agents.settings import current

T = TypeVar("T")
Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]
CircuitKey = tuple[str, str, str]
"""(provider, base_url or "", model)."""

COUNTED: frozenset[str] = frozenset(f.FALL_BACK)
"""The failure types that count towards opening: the ones the workflow falls back on."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CircuitSnapshot:
    """One circuit as it stands, for metrics and status pages (a copy: changing it does nothing)."""

    provider: str
    base_url: str
    model: str
    state: State
    consecutive_failures: int
    retry_in_seconds: float | None  # open: seconds until a trial call is let through
    trial_in_flight: bool
    last_failure: str | None
    opened_total: int  # how many times it opened (re-opens after a failed trial included)
    rejected_total: int  # calls failed fast without touching the network


@dataclass(frozen=True)
class Permit:
    """Leave to make one call: which state period it was granted in, and whether it is the trial."""

    generation: int
    trial: bool


def describe(key: CircuitKey) -> str:
    provider, base_url, model = key
    return f"{provider} model {model!r}" + (f" at {base_url}" if base_url else "")


class CircuitBreaker:
    """The state machine of one (provider, base_url, model)."""

    def __init__(self, key: CircuitKey, threshold: int, cooldown: float, clock: Clock) -> None:
        if threshold < 1:
            raise ValueError("a circuit breaker needs threshold >= 1 (0 disables the registry)")
        if cooldown < 0:
            raise ValueError("cooldown must not be negative")
        self.key = key
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._open_until = 0.0
        self._failures = 0
        self._generation = 0  # bumped on every open and close
        self._trial_in_flight = False
        self._last_failure: str | None = None
        self._opened_total = 0
        self._rejected_total = 0

    # ---- the three questions a call asks -------------------------------------------------

    def acquire(self) -> Permit:
        """Leave to call the provider, or a non-retryable ProviderUnavailable to fail fast."""
        with self._lock:
            if not self._open:
                return Permit(self._generation, trial=False)
            remaining = self._open_until - self._clock()
            if remaining <= 0 and not self._trial_in_flight:
                self._trial_in_flight = True
                log.info("circuit half-open for %s: letting one trial call through", self._name)
                return Permit(self._generation, trial=True)
            self._rejected_total += 1
            if remaining > 0:
                when = f"will try again in {remaining:.1f}s"
            else:
                when = "a trial call is in flight; calls resume if it succeeds"
            last = f" (last: {self._last_failure})" if self._last_failure else ""
            raise ApplicationError(
                f"circuit open for {self._name} after {self._failures} consecutive failures"
                f"{last}: failing fast without calling it; {when}",
                type=f.PROVIDER_UNAVAILABLE,
                non_retryable=True,  # retrying against an open circuit only delays the fallback
            )

    def succeeded(self, permit: Permit) -> None:
        with self._lock:
            if permit.generation != self._generation:
                return  # let through before the last change of state: stale news
            self._failures = 0
            if permit.trial:
                self._trial_in_flight = False
                self._open = False
                self._generation += 1
                log.warning("circuit closed for %s: the trial call succeeded", self._name)

    def failed(self, permit: Permit, kind: str | None, message: str = "") -> None:
        """A call ended with an exception; `kind` is its ApplicationError type, if it has one."""
        with self._lock:
            if permit.generation != self._generation:
                return
            if kind not in COUNTED:
                if permit.trial:
                    self._trial_in_flight = False  # no verdict: the next caller may try
                return
            self._failures += 1
            self._last_failure = f"{kind}: {message[:200]}" if message else kind
            if permit.trial or self._failures >= self.threshold:
                self._trip()

    def _trip(self) -> None:
        self._open = True
        self._open_until = self._clock() + self.cooldown
        self._trial_in_flight = False
        self._generation += 1
        self._opened_total += 1
        log.warning(
            "circuit open for %s after %d consecutive failures (last: %s); failing fast for %.1fs",
            self._name,
            self._failures,
            self._last_failure,
            self.cooldown,
        )

    # ---- looking at it -------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return describe(self.key)

    def snapshot(self) -> CircuitSnapshot:
        with self._lock:
            state: State = "closed"
            retry_in: float | None = None
            if self._open:
                remaining = self._open_until - self._clock()
                state = "open" if remaining > 0 else "half_open"
                retry_in = max(remaining, 0.0)
            provider, base_url, model = self.key
            return CircuitSnapshot(
                provider=provider,
                base_url=base_url,
                model=model,
                state=state,
                consecutive_failures=self._failures,
                retry_in_seconds=retry_in,
                trial_in_flight=self._trial_in_flight,
                last_failure=self._last_failure,
                opened_total=self._opened_total,
                rejected_total=self._rejected_total,
            )


class CircuitRegistry:
    """The breakers of one worker process, created on first use; threshold 0 disables them."""

    def __init__(self, threshold: int, cooldown: float, clock: Clock = time.monotonic) -> None:
        if threshold < 0:
            raise ValueError("threshold must be >= 0 (0 disables the circuit breaker)")
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[CircuitKey, CircuitBreaker] = {}

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def breaker(self, key: CircuitKey) -> CircuitBreaker:
        with self._lock:
            found = self._breakers.get(key)
            if found is None:
                found = CircuitBreaker(key, self.threshold, self.cooldown, self.clock)
                self._breakers[key] = found
            return found

    async def call(self, key: CircuitKey, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work()` through the circuit of `key`; `work` is not even called if it is open."""
        if not self.enabled:
            return await work()
        breaker = self.breaker(key)
        permit = breaker.acquire()
        try:
            result = await work()
        except ApplicationError as exc:
            breaker.failed(permit, exc.type, exc.message)
            raise
        except BaseException:  # cancelled, or a bug: no verdict on the provider
            breaker.failed(permit, None)
            raise
        breaker.succeeded(permit)
        return result

    def snapshot(self) -> dict[CircuitKey, CircuitSnapshot]:
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.key: b.snapshot() for b in breakers}


_registries: dict[tuple[int, float], CircuitRegistry] = {}
_registry_lock = threading.Lock()


def registry() -> CircuitRegistry:
    """The registry of the worker whose activity runs (its settings' threshold and cooldown):
    workers with the same ones share it, as they share the models they call."""
    settings = current()
    key = (settings.breaker_threshold, settings.breaker_cooldown_seconds)
    with _registry_lock:
        found = _registries.get(key)
        if found is None:
            found = _registries[key] = CircuitRegistry(*key)
        return found


def reset(replacement: CircuitRegistry | None = None) -> None:
    """Forget every circuit (tests: one test's failures must not open another's circuits); with
    `replacement`, install it as the registry of the settings in force."""
    settings = current()
    with _registry_lock:
        _registries.clear()
        if replacement is not None:
            key = (settings.breaker_threshold, settings.breaker_cooldown_seconds)
            _registries[key] = replacement


def snapshot() -> dict[CircuitKey, CircuitSnapshot]:
    """Every circuit of this worker and its state: read-only, for a metrics endpoint."""
    return registry().snapshot()
