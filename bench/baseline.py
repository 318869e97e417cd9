"""A bare Temporal agent loop: the baseline the benchmark measures the agent loop against.

One `llm` activity per turn and one `tool` activity per tool call, the conversation held in the
workflow and passed whole to each model call, the same data converter (pydantic), the same
start-to-close, heartbeat and retry settings as the agent loop. No spec resolution, transcript,
budgets, search attributes, summaries or queries: what anyone would write by hand first.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bench.baseline_activities import (
        SYSTEM,
        BaselineRun,
        LLMInput,
        ToolInput,
        llm,
        task_message,
        tool,
        tool_arguments,
    )

# The same shapes as workflows/agent.py (LLM_RETRY) and agents/spec.py (ToolContract) use.
LLM_TIMEOUT = timedelta(seconds=120)
LLM_HEARTBEAT = timedelta(seconds=30)
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=[
        "ContextWindowExceeded",
        "MalformedModelOutput",
        "AuthenticationFailed",
        "InvalidRequest",
    ],
)
TOOL_TIMEOUT = timedelta(seconds=10)
TOOL_HEARTBEAT = timedelta(seconds=10)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=[
        "ToolInputInvalid",
        "ToolRejected",
        "ToolContractViolation",
        "UnknownTool",
    ],
)


@workflow.defn(name="BaselineAgentWorkflow")
class BaselineAgentWorkflow:
    @workflow.run
    async def run(self, run: BaselineRun) -> str:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": task_message(run.turns)},
        ]
        for _ in range(run.max_turns):
            reply: dict[str, Any] = await workflow.execute_activity(
                llm,
                LLMInput(messages=messages),
                start_to_close_timeout=LLM_TIMEOUT,
                heartbeat_timeout=LLM_HEARTBEAT,
                retry_policy=LLM_RETRY,
            )
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                return str(reply.get("content") or "")
            for call in calls:
                output = await workflow.execute_activity(
                    tool,
                    ToolInput(
                        name=call["function"]["name"],
                        arguments=tool_arguments(call["function"]["arguments"]),
                        idempotency_key=f"{workflow.info().workflow_id}/{call['id']}",
                    ),
                    start_to_close_timeout=TOOL_TIMEOUT,
                    heartbeat_timeout=TOOL_HEARTBEAT,
                    retry_policy=TOOL_RETRY,
                )
                content = json.dumps(output, sort_keys=True)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        return "turn budget used up"
