"""The durable tools: waits for outside events and timers, run in the workflow itself.

A wait costs no process: the run hibernates in history until the event or the timer fires,
across worker restarts and deploys.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agents._builtin import (
        AskHumanInput,
        AskHumanOutput,
        SleepUntilInput,
        WaitForEventInput,
        WaitForEventOutput,
    )
    from durable_agents._spec import AgentSpec
    from durable_agents._vocab.text import printable
    from durable_agents.workflows.exits import ContinueRun, EndRun
    from durable_agents.workflows.state import DETAILS, OperatorAction, Question, RunState, spoken

# Characters of a timer's label in the UI.
SUMMARY = 200


async def within(
    condition: Callable[[], bool],
    timeout: timedelta,
    state: RunState | None = None,
    summary: str | None = None,
) -> bool:
    """True if the condition came true within the timeout.

    `summary` labels the wait's timer in the Temporal UI. With `state`, the wait is a safe
    point: if the run should continue as new first (its history grew while it waited),
    ContinueRun is raised and the new run waits on.

    Waits end through return values, never `finally`: a `finally` that issues commands would
    also run when the worker evicts the run from its cache, and break its next replay.
    """
    # Not while a message is being taken (a decision whose proof is being checked): it may be
    # the very answer waited for, and must land in this run's state before any new run starts.
    due = (
        (lambda: state.continue_due() and workflow.all_handlers_finished())
        if state is not None
        else lambda: False
    )
    if timeout <= timedelta(0):
        return condition()
    try:
        await workflow.wait_condition(
            lambda: condition() or due(),
            timeout=timeout,
            timeout_summary=printable(summary, SUMMARY) if summary else None,
        )
    except TimeoutError:
        # The answer may have come in the very task in which the timer fired.
        return condition()
    if condition():
        return True
    raise ContinueRun


async def wait_for_event(
    state: RunState, spec: AgentSpec, args: WaitForEventInput, call_id: str = ""
) -> dict[str, Any]:
    policy = spec.wait_policy(args.events)
    timeout = min(timedelta(hours=args.timeout_hours), policy.max_wait)
    names = " or ".join(args.events)
    # A run continued as new while waiting waits on from when the wait began.
    started = state.waiting.waits.setdefault(call_id, workflow.now())
    state.start_waiting(f"event {names}", timeout, until=started + timeout)
    left = timeout - (workflow.now() - started)
    summary = f"wait for {names}, at most {spoken(timeout)}"
    if not await within(lambda: state.has_event(args.events), left, state, summary):
        state.waiting.waits.pop(call_id, None)
        state.stop_waiting()
        hours = timeout.total_seconds() / 3600
        state.note("wait", f"no {names} within {hours:g} h")
        if policy.on_timeout == "end_run":
            raise EndRun("timed_out", f"no {names} came within {hours:g} h")
        return WaitForEventOutput(status="timeout", waited_hours=hours).model_dump(mode="json")
    state.waiting.waits.pop(call_id, None)
    state.stop_waiting()
    received = state.take_event(args.events)
    assert received is not None
    waited = (workflow.now() - started).total_seconds() / 3600
    return WaitForEventOutput(
        status="received",
        event=received.event.name,
        payload=received.event.payload,
        waited_hours=round(waited, 3),
    ).model_dump(mode="json")


async def sleep_until(state: RunState, args: SleepUntilInput) -> dict[str, Any]:
    delay = args.until - workflow.now()
    if delay > timedelta(0):
        state.start_waiting(f"the time {args.until.isoformat()}", delay, until=args.until)
        await workflow.sleep(delay, summary=f"sleep until {args.until:%Y-%m-%d %H:%M} UTC")
        state.stop_waiting()
    return {"woke_at": workflow.now().isoformat()}


async def ask_human(
    state: RunState, spec: AgentSpec, principal: str, args: AskHumanInput, call_id: str = ""
) -> dict[str, Any]:
    """Put a question to the run's principal; the `message` update carries the answer."""
    question = state.waiting.question
    if question is None or question.call_id != call_id or not call_id:
        # (A run continued as new while asking asks on: the answer may already be in.)
        question = Question(text=args.question, asked_at=workflow.now(), call_id=call_id)
        state.waiting.question = question
    timeout = min(timedelta(hours=args.timeout_hours), spec.default_wait.max_wait)
    state.start_waiting(
        f"an answer from {principal} to: {args.question}",
        timeout,
        until=question.asked_at + timeout,
    )
    left = timeout - (workflow.now() - question.asked_at)
    summary = f"answer from {principal}, at most {spoken(timeout)}"
    answered = await within(lambda: question.answer is not None, left, state, summary)
    state.waiting.question = None
    state.stop_waiting()
    if not answered:
        state.note("wait", f"no answer from {principal} within {spoken(timeout)}")
        return AskHumanOutput(status="timeout").model_dump(mode="json")
    return AskHumanOutput(
        status="answered", answer=question.answer, answered_by=question.answered_by
    ).model_dump(mode="json")


async def park(state: RunState, reason: str) -> OperatorAction:
    """Hold the run, context intact, until an operator says how to go on.

    `agentctl resume` retries the step that stopped, `agentctl retry-turn` gives the problem to
    the model as the step's result, `agentctl abort` ends the run (a saga unwinds first).
    """
    state.parking.reason, state.parking.action = reason, None
    state.set_status("needs_attention")
    state.last_error = reason
    state.note("error", f"needs attention: {reason}")
    workflow.set_current_details(
        f"Needs attention since {workflow.now():%Y-%m-%d %H:%M} UTC: "
        f"{printable(reason, DETAILS)}. An operator "
        "can `agentctl resume`, `agentctl retry-turn` or `agentctl abort` it."
    )
    await workflow.wait_condition(lambda: state.parking.action is not None)
    action = state.parking.action
    assert action is not None
    state.parking.reason, state.parking.action = None, None
    state.set_status("running")
    state.note("note", f"an operator chose {action.replace('_', '-')}")
    return action


async def run_durable(
    state: RunState, spec: AgentSpec, principal: str, args: Any, call_id: str = ""
) -> dict[str, Any]:
    """Dispatch a validated durable-tool input to its implementation."""
    if isinstance(args, WaitForEventInput):
        return await wait_for_event(state, spec, args, call_id)
    if isinstance(args, SleepUntilInput):
        return await sleep_until(state, args)
    if isinstance(args, AskHumanInput):
        return await ask_human(state, spec, principal, args, call_id)
    raise TypeError(f"no durable implementation for {type(args).__name__}")
