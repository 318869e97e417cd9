"""One model turn: the `call_llm` activity, and what a failed turn means for the run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm import call_llm
    from agents.routes import parse_route
    from agents.spec import AgentSpec
    from workflows import failures as f
    from workflows.models import LLMReply, LLMRequest, Message
    from workflows.state import RunState

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=f.LLM_NON_RETRYABLE,
)


def failure_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def failure_message(err: ActivityError) -> str:
    return str(err.cause.message if isinstance(err.cause, ApplicationError) else err.cause)


async def ask_model(state: RunState, spec: AgentSpec, route: str) -> LLMReply:
    """One model turn; a malformed reply earns a bounded number of repair messages."""
    request = LLMRequest(
        route=route,
        system=spec.system_prompt,
        messages=state.messages,
        tools=[t.schema() for t in spec.tools],
        max_tokens=spec.max_tokens,
        agent=spec.name,
        turn=state.turn,
    )
    while True:
        try:
            reply: LLMReply = await workflow.execute_activity(
                call_llm,
                request,
                start_to_close_timeout=spec.llm_timeout,
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=LLM_RETRY,
                summary=f"LLM turn {state.turn} · {parse_route(route).model}",
            )
        except ActivityError as err:
            repairable = failure_type(err) == f.MALFORMED_MODEL_OUTPUT
            if not repairable or state.repairs >= spec.max_repairs:
                raise unrecoverable(state, err) from err
            state.repairs += 1
            problem = failure_message(err)
            state.note("error", f"malformed model reply, asking for a repair: {problem}")
            repair = Message(
                role="user",
                content=f"Your previous reply could not be used: {problem}. Reply again, "
                "with tool arguments as one valid JSON object.",
            )
            request.messages = [*state.messages, repair]
            continue
        state.usage = state.usage.plus(reply.usage)
        return reply


def unrecoverable(state: RunState, err: ActivityError) -> ApplicationError:
    kind = failure_type(err) or "ActivityFailed"
    return ApplicationError(
        f"turn {state.turn}: {kind}: {failure_message(err)}",
        type=kind,
        non_retryable=True,
    )
