"""The commands' way to the runs: the public client, proving what the signed-in person sends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from durable_agents.client import AgentClient

T = TypeVar("T")


async def agents(address: str | None) -> AgentClient:
    """The public client (durable_agents.client) on `address`, proving what the signed-in
    person sends (`agentctl login`)."""
    from durable_agents.client import AgentClient
    from durable_agents.starters import signin

    return await AgentClient.connect(address, prover=signin.prover)


async def with_client(address: str | None, work: Callable[[AgentClient], Awaitable[T]]) -> T:
    return await work(await agents(address))
