"""Fault injection, per request (`x-sim-fault` header) or queued server-side (/admin/faults).

Chaos tests need failures that are precise and countable: "the first two calls get a 429, the
third succeeds". A header fault with `times=N; key=K` applies to the first N requests carrying
key K, so a client retry with the same header eventually succeeds. Queued faults serve code that
cannot set headers (a Temporal activity deep inside a workflow): they hit the next N requests
to a target (a model/script name or a company action, optionally prefixed `model:`/`company:`,
or `*`).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

Scope = Literal["model", "company"]
FAULT_HEADER = "x-sim-fault"

MODEL_ERROR_FAULTS = frozenset(
    {"rate_limit", "unavailable", "overloaded", "server_error", "auth", "context_length"}
)
# cut_stream: a streamed reply stops half-way (the connection drops), as a provider's can.
MODEL_FAULTS = MODEL_ERROR_FAULTS | {
    "slow",
    "malformed_tool_json",
    "unknown_tool",
    "refusal",
    "cut_stream",
}
COMPANY_FAULTS = frozenset(
    {
        "rate_limit",
        "unavailable",
        "server_error",
        "auth",
        "refused",
        "slow",
        "commit_then_fail",
        "delay",
        "off_contract",
    }
)
ALL_FAULTS = MODEL_FAULTS | COMPANY_FAULTS
_ALLOWED: dict[str, frozenset[str]] = {"model": MODEL_FAULTS, "company": COMPANY_FAULTS}


class FaultError(ValueError):
    """A fault spec that cannot be honoured; reported to the caller as a 400."""


@dataclass(frozen=True)
class Fault:
    """A fault name and its parameters (e.g. seconds, retry_after, when)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        try:
            return float(self.params.get(key, default))
        except (TypeError, ValueError) as exc:
            raise FaultError(f"fault parameter {key}={self.params[key]!r} is not a number") from exc


def parse_fault(spec: str) -> tuple[Fault, int | None, str]:
    """Parse `name; k=v; ...` into the fault, its `times` limit and its counting key."""
    name, *pairs = [part.strip() for part in spec.split(";") if part.strip()] or [""]
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise FaultError(f"fault parameter {pair!r} is not of the form key=value")
        params[key.strip()] = value.strip()
    times_raw = params.pop("times", None)
    key = str(params.pop("key", spec.strip()))
    try:
        times = None if times_raw is None else int(times_raw)
    except ValueError as exc:
        raise FaultError(f"times={times_raw!r} is not an integer") from exc
    return Fault(name, params), times, key


@dataclass
class QueuedFault:
    id: int
    target: str
    fault: Fault
    remaining: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "fault": self.fault.name,
            "params": self.fault.params,
            "remaining": self.remaining,
        }


class FaultBook:
    """Thread-safe store of header-fault counters and queued faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._queue: list[QueuedFault] = []
        self._ids = itertools.count(1)

    def resolve(self, scope: Scope, target: str, header: str | None) -> Fault | None:
        """The fault to apply to this request, consuming one use of it; None if none applies."""
        with self._lock:
            if header and header.strip():
                fault, times, key = parse_fault(header)
                if fault.name not in _ALLOWED[scope]:
                    raise FaultError(
                        f"unknown {scope} fault {fault.name!r}; known: {sorted(_ALLOWED[scope])}"
                    )
                self._counts[key] = self._counts.get(key, 0) + 1
                if times is None or self._counts[key] <= times:
                    return fault
            return self._take_queued(scope, target)

    def _take_queued(self, scope: Scope, target: str) -> Fault | None:
        for queued in self._queue:
            if queued.target in (target, f"{scope}:{target}", "*") and (
                queued.fault.name in _ALLOWED[scope]
            ):
                queued.remaining -= 1
                if queued.remaining <= 0:
                    self._queue.remove(queued)
                return queued.fault
        return None

    def enqueue(self, target: str, fault: Fault, times: int) -> QueuedFault:
        with self._lock:
            queued = QueuedFault(next(self._ids), target, fault, times)
            self._queue.append(queued)
            return queued

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [q.as_dict() for q in self._queue]

    def clear(self) -> int:
        """Drop queued faults and header counters; returns how many queued faults were dropped."""
        with self._lock:
            dropped = len(self._queue)
            self._queue.clear()
            self._counts.clear()
            return dropped


class FaultRequest(BaseModel):
    """Body of POST /admin/faults."""

    target: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)
    times: int = Field(default=1, ge=1)

    @field_validator("fault")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ALL_FAULTS:
            raise ValueError(f"unknown fault {value!r}; known: {sorted(ALL_FAULTS)}")
        return value


def admin_router(book: FaultBook) -> APIRouter:
    """/admin/faults: queue, list and clear server-side faults."""
    router = APIRouter(prefix="/admin/faults", tags=["admin"])

    @router.post("", status_code=201)
    def add_fault(body: FaultRequest) -> dict[str, Any]:
        queued = book.enqueue(body.target, Fault(body.fault, body.params), body.times)
        return {"queued": queued.as_dict()}

    @router.get("")
    def list_faults() -> dict[str, Any]:
        return {"faults": book.listing()}

    @router.delete("")
    def clear_faults() -> dict[str, Any]:
        return {"cleared": book.clear()}

    return router
