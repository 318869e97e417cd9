"""One model turn: the `call_llm` activity, and what a failed turn means for the run."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from durable_agents._routes import parse_route
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab import failures as f
    from durable_agents._vocab.names import CALL_LLM
    from durable_agents._vocab.schemas import ConversationRef, LLMReply, LLMRequest, Message
    from durable_agents.workflows import mcp_tools, payloads
    from durable_agents.workflows.compaction import compact
    from durable_agents.workflows.exits import aborted
    from durable_agents.workflows.state import RunState
    from durable_agents.workflows.waits import park

# Which failures are worth retrying is the activity's call: every type in f.LLM_NON_RETRYABLE is
# raised non-retryable (activities/providers/common.error), so the policy need not list them in
# every scheduled event.
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
)
# A model call heartbeats at half this while it waits for the provider
# (activities/heartbeat.py): a killed worker's call runs again elsewhere within about this long.
# Runs that began before the patch keep 30 s.
LLM_HEARTBEAT = timedelta(seconds=10)
LLM_HEARTBEAT_PATCH = "llm-heartbeat-10s-v1"


def failure_type(err: ActivityError) -> str | None:
    cause = err.cause
    if isinstance(cause, TemporalTimeoutError):
        return f.TIMEOUT  # start-to-close or heartbeat ran out, e.g. on a dead worker
    return cause.type if isinstance(cause, ApplicationError) else None


def cancelled(err: ActivityError) -> bool:
    """The activity ended because the run itself is being cancelled: never swallow that."""
    return isinstance(err.cause, CancelledError)


def failure_message(err: ActivityError) -> str:
    return str(err.cause.message if isinstance(err.cause, ApplicationError) else err.cause)


async def ask_model(
    state: RunState, spec: AgentSpec, routes: list[str], attempts: int | None = None
) -> LLMReply:
    """One model turn, with the strategy each failure type calls for.

    A malformed reply earns a bounded number of repair messages; an unavailable, slow or
    throttled provider, once its retries are spent, hands over to the next model of the route
    (for the rest of the run); anything else parks the run until an operator acts.
    """
    repair: Message | None = None
    while True:
        route = routes[min(state.route_index, len(routes) - 1)]
        messages = state.messages if repair is None else [*state.messages, repair]
        try:
            reply = await _call(state, spec, route, messages, attempts or spec.llm_attempts)
        except payloads.TooLarge as exc:
            action = await park(state, f"turn {state.turn}: {f.PAYLOAD_TOO_LARGE}: {exc}")
            if action == "abort":
                raise aborted(state) from None
            continue
        except ActivityError as err:
            if cancelled(err):
                raise
            kind, problem = failure_type(err), failure_message(err)
            if kind == f.MALFORMED_MODEL_OUTPUT and state.progress.repairs < spec.max_repairs:
                state.progress.repairs += 1
                state.note("error", f"malformed model reply, asking for a repair: {problem}")
                repair = Message(
                    role="user",
                    content=f"Your previous reply could not be used: {problem}. Reply again, "
                    "with tool arguments as one valid JSON object.",
                )
                continue
            if kind == f.CONTEXT_WINDOW_EXCEEDED and await compact(
                state, spec, route, "the provider said the context window is exceeded"
            ):
                continue
            if kind in f.FALL_BACK and state.route_index + 1 < len(routes):
                state.route_index += 1
                state.note(
                    "error",
                    f"{kind} from {route}: falling back to {routes[state.route_index]}: {problem}",
                )
                continue
            action = await park(state, f"turn {state.turn}: {kind}: {problem}")
            if action == "abort":
                raise aborted(state) from None
            if kind in f.FALL_BACK:
                state.route_index = 0  # an operator says the providers are back: start over
            repair = None
            continue
        state.usage = state.usage.plus(reply.usage)
        for problem in reply.degraded:
            state.note("note", problem)
        return reply


async def _call(
    state: RunState, spec: AgentSpec, route: str, messages: list[Message], attempts: int
) -> LLMReply:
    if not state.store.by_reference:
        system, tools = spec.system_prompt, mcp_tools.schemas(state, spec)
        return await _execute(state, spec, route, attempts, system, messages, tools)
    for attempt in range(payloads.RESENDS):
        system, tools = payloads.preamble(state, spec)
        ref = payloads.reference(state, messages)
        try:
            reply = await _execute(state, spec, route, attempts, system, [], tools, ref)
        except ActivityError as err:
            if payloads.lacked(state, err, attempt):
                await payloads.recover(state)
                continue
            raise
        payloads.replied(state, len(messages), reply.message, plain=messages is state.messages)
        return reply
    raise AssertionError("unreachable")


async def _execute(
    state: RunState,
    spec: AgentSpec,
    route: str,
    attempts: int,
    system: str,
    messages: list[Message],
    tools: list[Any],
    ref: ConversationRef | None = None,
) -> LLMReply:
    request = LLMRequest(
        route=route,
        system=system,
        messages=messages,
        tools=tools,
        conversation=ref,
        max_tokens=spec.max_tokens,
        agent=spec.name,
        turn=state.turn,
        live_text=spec.live_text,
    )
    payloads.check_size(
        request, f"the input of call_llm for turn {state.turn}", state.store.max_payload
    )
    reply: LLMReply = await workflow.execute_activity(
        CALL_LLM,
        request,
        result_type=LLMReply,
        start_to_close_timeout=spec.llm_timeout,
        heartbeat_timeout=(
            LLM_HEARTBEAT if workflow.patched(LLM_HEARTBEAT_PATCH) else timedelta(seconds=30)
        ),
        retry_policy=replace(LLM_RETRY, maximum_attempts=attempts),
        summary=f"LLM turn {state.turn} · {parse_route(route).model}",
    )
    return reply
