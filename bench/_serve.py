"""A benchmark's worker process: serve until SIGTERM, then leave without the interpreter's
finalization (the SDK's core threads can abort it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from temporalio.worker import Worker


async def until_sigterm(worker: Worker) -> None:
    """Run `worker`, say "worker ready" on stdout once it polls, stop on SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("worker ready", flush=True)
        await stop.wait()


def exit_after(work: Coroutine[Any, Any, None]) -> NoReturn:
    asyncio.run(work)
    sys.stdout.flush()
    os._exit(0)
