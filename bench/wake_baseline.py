"""The raw Temporal baseline of `bench.hibernation`: a bare workflow that makes one activity
call, waits for a signal, makes one more activity call and completes. Same data converter
(pydantic) as the agent's workers, nothing else of the platform.

`WakeBaselineStatus` is the same workflow plus what an agent run does for its operators around
a wait: `AgentStatus` set at every change (running, waiting_event, running, completed) and a
deadline on the wait (48 h), so its wake-up issues the commands an agent's does (the timer
cancelled, two status updates). `bench.hibernation --baseline status` measures it: what the
status costs, apart from the rest of the platform.

    python -m bench.wake_baseline TASK_QUEUE     (TEMPORAL_ADDRESS in the environment)

runs a worker of it in its own process; `DURABLE_AGENTS_MAX_CACHED_WORKFLOWS` sets its
`max_cached_workflows` as it does the agent's workers'.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench._serve import exit_after, until_sigterm

SIGNAL = "go"
PARKED_LOG = "WAKE_BASELINE_LOG"  # a file the first activity of each run appends its id to


@activity.defn
async def step(n: int) -> str:
    log = os.environ.get(PARKED_LOG)
    if log and n == 1:
        # Which runs are about to wait: what `bench.hibernation` counts (a bare workflow has no
        # status to search by).
        with open(log, "a") as f:  # noqa: ASYNC230  (one short line, as the run parks)
            f.write(f"{activity.info().workflow_id}\n")
    return f"step {n}"


STATUS = SearchAttributeKey.for_keyword("AgentStatus")


@workflow.defn(name="WakeBaseline")
class WakeBaseline:
    statuses = False  # WakeBaselineStatus: AgentStatus at every change, a deadline on the wait

    def __init__(self) -> None:
        self._go = False

    @workflow.signal(name=SIGNAL)
    def go(self, payload: Any = None) -> None:
        self._go = True

    def _mark(self, status: str) -> None:
        if self.statuses:
            workflow.upsert_search_attributes([STATUS.value_set(status)])

    @workflow.run
    async def run(self) -> str:
        timeout = timedelta(seconds=60)
        self._mark("running")
        await workflow.execute_activity(step, 1, start_to_close_timeout=timeout)
        self._mark("waiting_event")
        deadline = timedelta(hours=48) if self.statuses else None
        await workflow.wait_condition(lambda: self._go, timeout=deadline)
        self._mark("running")
        result = await workflow.execute_activity(step, 2, start_to_close_timeout=timeout)
        self._mark("completed")
        return result


@workflow.defn(name="WakeBaselineStatus")
class WakeBaselineStatus(WakeBaseline):
    statuses = True

    @workflow.run
    async def run(self) -> str:
        return await super().run()


async def main(task_queue: str) -> None:
    client = await Client.connect(
        os.environ["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
    )
    options: dict[str, Any] = {}
    cached = os.environ.get("DURABLE_AGENTS_MAX_CACHED_WORKFLOWS", "").strip()
    if cached:
        options["max_cached_workflows"] = int(cached)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[WakeBaseline, WakeBaselineStatus],
        activities=[step],
        **options,
    )
    await until_sigterm(worker)


if __name__ == "__main__":
    exit_after(main(sys.argv[1]))
