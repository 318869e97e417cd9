"""A worker's identity names the agents it serves, so `agentctl agents` can tell which agents
some worker on a task queue knows (the server lists pollers with their identities)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

MARK = " agents="
LIMIT = 1000  # characters: more agents than fit are not named (the listing then says none)


def identity(agents: Iterable[str]) -> str:
    base = f"{os.getpid()}@{socket.gethostname()}"
    named = f"{base}{MARK}{','.join(sorted(agents))}"
    return named if len(named) <= LIMIT else base


def agents_in_identity(text: str) -> list[str]:
    _, found, names = text.partition(MARK)
    return [n for n in names.split(",") if n] if found else []
