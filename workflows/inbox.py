"""Outside events kept until an agent asks for them, so an early event is never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.models import EventSignal


@dataclass
class Received:
    event: EventSignal
    at: datetime


@dataclass
class Inbox:
    """Events in the order they arrived; each is handed to at most one wait."""

    pending: list[Received] = field(default_factory=list)

    def put(self, event: EventSignal, at: datetime) -> None:
        self.pending.append(Received(event, at))

    def has(self, names: list[str]) -> bool:
        return any(r.event.name in names for r in self.pending)

    def take(self, names: list[str]) -> Received | None:
        for i, received in enumerate(self.pending):
            if received.event.name in names:
                return self.pending.pop(i)
        return None

    def names(self) -> list[str]:
        return [r.event.name for r in self.pending]
