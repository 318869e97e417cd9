"""What the providers share: Retry-After parsing and the status-code half of classification."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

from durable_agents._vocab import failures as f

MAX_RETRY_AFTER = timedelta(minutes=15)


def _bounded(seconds: float) -> timedelta | None:
    """A delay in [0, MAX_RETRY_AFTER]; None for NaN. Huge values must not overflow timedelta."""
    if math.isnan(seconds):
        return None
    return timedelta(seconds=min(max(seconds, 0.0), MAX_RETRY_AFTER.total_seconds()))


def retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> timedelta | None:
    """The server's requested delay, from `retry-after-ms` or `Retry-After` (seconds or a date).

    Bounded to [0, MAX_RETRY_AFTER]; None when absent or unreadable. Never raises: a garbage
    header must not turn a classified failure into an unclassified crash.
    """
    if headers is None:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            delay = _bounded(float(ms) / 1000)
        except ValueError:
            delay = None
        if delay is not None:
            return delay
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" yields a naive datetime; HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    return _bounded((when - (now or datetime.now(UTC))).total_seconds())


def jittered(delay: timedelta) -> timedelta:
    """Up to 20% more than asked, so a crowd of throttled runs does not return at once."""
    bounded = min(delay, MAX_RETRY_AFTER)
    return bounded * (1 + random.uniform(0, 0.2))


def error(kind: str, message: str, *, delay: timedelta | None = None) -> ApplicationError:
    """An ApplicationError of one taxonomy type; retryability follows from the type."""
    return ApplicationError(
        message,
        type=kind,
        non_retryable=kind in f.LLM_NON_RETRYABLE,
        next_retry_delay=delay,
    )


def classify_status(
    provider: str, status: int, message: str, headers: Mapping[str, str] | None, context_hit: bool
) -> ApplicationError:
    """Map an HTTP status from any provider onto the taxonomy."""
    text = f"{provider} answered HTTP {status}: {message}"
    if status == 429:
        wait = retry_after(headers)
        return error(f.RATE_LIMITED, text, delay=jittered(wait) if wait else None)
    if status in (401, 403):
        return error(f.AUTHENTICATION_FAILED, text)
    if context_hit:
        return error(f.CONTEXT_WINDOW_EXCEEDED, text)
    if status == 408:
        return error(f.TIMEOUT, text)
    if status == 409 or status >= 500:
        return error(f.PROVIDER_UNAVAILABLE, text, delay=retry_after(headers))
    return error(f.INVALID_REQUEST, text)
