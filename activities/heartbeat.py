"""Heartbeat while a long call runs, so a dead worker is noticed within the heartbeat timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


def _interval() -> float:
    timeout = activity.info().heartbeat_timeout or timedelta(seconds=10)
    return max(0.2, timeout.total_seconds() / 2)


async def heartbeating(work: Awaitable[T], detail: str = "") -> T:
    """Await `work`, heartbeating at half the heartbeat timeout until it finishes."""
    if not activity.in_activity() or activity.info().is_local:
        # Outside an activity (a unit test), or a local one: nothing to heartbeat to.
        return await work
    task = asyncio.ensure_future(work)
    interval = _interval()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat(detail)
    finally:
        if not task.done():
            task.cancel()
