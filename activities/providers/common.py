"""What the providers share: Retry-After parsing and the status-code half of classification."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

from workflows import failures as f

MAX_RETRY_AFTER = timedelta(minutes=15)


def retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> timedelta | None:
    """The server's requested delay, from `retry-after-ms` or `Retry-After` (seconds or a date)."""
    if headers is None:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            return timedelta(milliseconds=float(ms))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), when - (now or datetime.now(UTC)))


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
