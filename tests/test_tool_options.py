"""A tool's own options, end to end on the time-skipping server: a tool on its own task queue runs
only on workers serving that queue; `ToolTransient` is retried with the same idempotency key and
`ToolRejected` goes back to the model, never retried."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from pydantic import BaseModel
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_agents import (
    AgentSet,
    AgentSpec,
    DurableAgentsPlugin,
    ToolContext,
    ToolRejected,
    ToolTransient,
    tool,
)
from durable_agents.testing import (
    AgentEnvironment,
    Message,
    Reply,
    ScriptedModel,
    call,
    results,
)

GPU = f"gpu-{uuid.uuid4().hex[:6]}"
RAN_ON: list[str] = []  # the task queue each call of `render` ran on
ATTEMPTS: Counter[str] = Counter()  # idempotency key -> attempts of `flaky`


class Frame(BaseModel):
    frame: int


class Rendered(BaseModel):
    frame: int
    queue: str


@tool(side_effect="read_only", task_queue=GPU)
async def render(args: Frame, ctx: ToolContext) -> Rendered:
    """Render a frame (needs a GPU: runs only on workers serving the GPU queue)."""
    queue = activity.info().task_queue
    RAN_ON.append(queue)
    return Rendered(frame=args.frame, queue=queue)


@tool(side_effect="read_only")
async def flaky(args: Frame, ctx: ToolContext) -> Rendered:
    """Fails twice with a transient error, then answers."""
    ATTEMPTS[ctx.idempotency_key] += 1
    if ATTEMPTS[ctx.idempotency_key] < 3:
        raise ToolTransient("the render farm is busy")
    return Rendered(frame=args.frame, queue="flaky")


@tool(side_effect="read_only")
async def picky(args: Frame, ctx: ToolContext) -> Rendered:
    """Refuses odd frames."""
    ATTEMPTS[ctx.idempotency_key] += 1
    raise ToolRejected(f"frame {args.frame} is odd: ask for an even one")


def script(messages: list[Message]) -> Reply:
    for name in ("render", "flaky", "picky"):
        if not results(messages, name):
            return call(name, frame=7)
    said = {name: results(messages, name)[-1] for name in ("render", "flaky", "picky")}
    return f"render on {said['render']['queue']}; flaky {said['flaky']['queue']}; {said['picky']}"


SPEC = AgentSpec(
    name="renderer",
    version="1",
    description="Renders frames.",
    system_prompt="Render the frame.",
    model_route=("scripted:renderer",),
    tools=(render, flaky, picky),
    input_model=Frame,
)
AGENTS = AgentSet((SPEC,))
MODELS = [ScriptedModel("renderer", script)]


async def test_tool_queue_retries_and_rejections(ts_env: WorkflowEnvironment) -> None:
    async with AgentEnvironment(AGENTS, models=MODELS, env=ts_env) as agents:
        handle = await agents.start("renderer", {"frame": 7})

        async def render_scheduled() -> bool:
            desc = await handle.describe()
            return any(
                p.activity_type.name == "run_tool"
                and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
                for p in desc.raw_description.pending_activities
            )

        for _ in range(100):
            if await render_scheduled():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the render tool was never scheduled")
        await asyncio.sleep(1)
        assert await render_scheduled() and RAN_ON == []  # the run's own worker never takes it

        gpu = Worker(
            ts_env.client,
            task_queue=GPU,
            plugins=[DurableAgentsPlugin(agents.catalog, models=MODELS, data_converter=False)],
        )
        async with gpu:
            result = await handle.result()
    assert RAN_ON == [GPU]
    assert result.outcome == "completed"
    assert result.answer.startswith(f"render on {GPU}; flaky flaky; ")
    assert "frame 7 is odd: ask for an even one" in result.answer
    key = next(k for k in ATTEMPTS if ATTEMPTS[k] == 3)  # flaky: two transient failures, then ok
    assert key.startswith(f"{handle.id}/")
    assert sorted(ATTEMPTS.values()) == [1, 3]  # picky: rejected once, never retried
