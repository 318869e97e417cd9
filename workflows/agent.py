"""The generic agent loop as a Temporal workflow.

Each turn asks the model (the `call_llm` activity) and carries out the tool calls it returns:
durable tools (waits, timers) run here in the workflow, every other tool is a `run_tool` activity
with an idempotency key. All state lives in the workflow, rebuilt from history on replay.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.llm import call_llm
    from activities.tools import run_tool
    from agents import UnknownAgent, get_agent
    from agents.durable import SleepUntilInput, WaitForEventInput, WaitForEventOutput
    from agents.routes import parse_route
    from agents.spec import AgentSpec, ToolContract, problems
    from workflows import failures as f
    from workflows import search
    from workflows.inbox import Inbox
    from workflows.models import (
        AgentResult,
        AgentRun,
        AgentStatus,
        AgentStatusValue,
        EventSignal,
        Identity,
        LLMReply,
        LLMRequest,
        Message,
        Outcome,
        ToolCall,
        ToolRequest,
        TranscriptEntry,
        Usage,
    )

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=f.LLM_NON_RETRYABLE,
)


class EndRun(Exception):
    """Raised inside the loop to finish the run with an outcome."""

    def __init__(self, outcome: Outcome, answer: str) -> None:
        super().__init__(answer)
        self.outcome = outcome
        self.answer = answer


def failure_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def failure_message(err: ActivityError) -> str:
    return str(err.cause.message if isinstance(err.cause, ApplicationError) else err.cause)


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow:
    @workflow.init
    def __init__(self, run: AgentRun) -> None:
        self._run = run
        self._spec: AgentSpec | None = None
        self._status: AgentStatusValue = "running"
        self._turn = 0
        self._usage = Usage()
        self._messages: list[Message] = []
        self._transcript: list[TranscriptEntry] = []
        self._inbox = Inbox()
        self._waiting_for: str | None = None
        self._waiting_since = None
        self._last_error: str | None = None
        self._tool_errors = 0
        self._repairs = 0

    # ---- messages in and out -------------------------------------------------------------

    @workflow.signal(name="event")
    def on_event(self, event: EventSignal) -> None:
        """An outside fact; kept until a `wait_for_event` asks for it."""
        self._inbox.put(event, workflow.now())
        self._note("event", f"event {event.name} received", event.model_dump(mode="json"))

    @workflow.query(name="status")
    def status(self) -> AgentStatus:
        return AgentStatus(
            agent=self._run.agent,
            workflow_id=workflow.info().workflow_id,
            principal=self._run.principal,
            status=self._status,
            turn=self._turn,
            max_turns=self._max_turns(),
            usage=self._usage,
            model_route=self._route(),
            waiting_for=self._waiting_for,
            waiting_since=self._waiting_since,
            last_error=self._last_error,
            events_pending=self._inbox.names(),
        )

    @workflow.query(name="transcript")
    def transcript(self) -> list[TranscriptEntry]:
        return self._transcript

    # ---- the loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        workflow.upsert_search_attributes(
            [
                search.AGENT_NAME.value_set(run.agent),
                search.PRINCIPAL.value_set(run.principal),
                search.AGENT_STATUS.value_set(self._status),
            ]
        )
        spec, data = self._resolve(run)
        task = spec.task_message(run.task, data)
        self._messages.append(Message(role="user", content=task))
        self._note("task", task)
        try:
            answer = await self._loop(spec)
            return self._finish("completed", answer)
        except EndRun as end:
            return self._finish(end.outcome, end.answer)
        except ApplicationError as err:
            self._last_error = err.message
            self._set_status("failed")
            raise

    async def _loop(self, spec: AgentSpec) -> str:
        while True:
            if self._turn >= self._max_turns():
                raise EndRun("turn_budget_exhausted", self._partial_answer())
            self._turn += 1
            reply = await self._ask_model(spec)
            self._messages.append(reply.message)
            if reply.message.content:
                self._note("assistant", reply.message.content)
            if not reply.message.tool_calls:
                return reply.message.content
            for call in reply.message.tool_calls:
                content = await self._dispatch(spec, call)
                self._messages.append(
                    Message(role="tool", tool_call_id=call.id, name=call.name, content=content)
                )

    async def _ask_model(self, spec: AgentSpec) -> LLMReply:
        """One model turn; a malformed reply earns a bounded number of repair messages."""
        route = self._route()[0]
        request = LLMRequest(
            route=route,
            system=spec.system_prompt,
            messages=self._messages,
            tools=[t.schema() for t in spec.tools],
            max_tokens=spec.max_tokens,
            agent=spec.name,
            turn=self._turn,
        )
        while True:
            try:
                reply: LLMReply = await workflow.execute_activity(
                    call_llm,
                    request,
                    start_to_close_timeout=spec.llm_timeout,
                    heartbeat_timeout=timedelta(seconds=30),
                    retry_policy=LLM_RETRY,
                    summary=f"LLM turn {self._turn} · {parse_route(route).model}",
                )
            except ActivityError as err:
                if (
                    failure_type(err) != f.MALFORMED_MODEL_OUTPUT
                    or self._repairs >= spec.max_repairs
                ):
                    raise self._unrecoverable(err) from err
                self._repairs += 1
                problem = failure_message(err)
                self._note("error", f"malformed model reply, asking for a repair: {problem}")
                request.messages = [
                    *self._messages,
                    Message(
                        role="user",
                        content=(
                            f"Your previous reply could not be used: {problem}. "
                            "Reply again, with tool arguments as one valid JSON object."
                        ),
                    ),
                ]
                continue
            self._usage = self._usage.plus(reply.usage)
            return reply

    def _unrecoverable(self, err: ActivityError) -> ApplicationError:
        kind = failure_type(err) or "ActivityFailed"
        return ApplicationError(
            f"turn {self._turn}: {kind}: {failure_message(err)}", type=kind, non_retryable=True
        )

    # ---- tools ---------------------------------------------------------------------------

    async def _dispatch(self, spec: AgentSpec, call: ToolCall) -> str:
        """Run one tool call and return what the model should read as its result."""
        self._note(
            "tool_call",
            f"{call.name}({json.dumps(call.arguments, sort_keys=True)})",
            {"id": call.id},
        )
        contract = spec.tool(call.name)
        if contract is None:
            known = ", ".join(t.name for t in spec.tools)
            return self._tool_error(spec, call, f"unknown tool {call.name!r}; tools: {known}")
        try:
            args = contract.input_model.model_validate(call.arguments)
        except ValidationError as exc:
            return self._tool_error(spec, call, f"invalid arguments for {call.name}: {problems(exc)}")
        if contract.durable:
            output = await self._durable(spec, contract, args)
        else:
            try:
                output = await self._activity_tool(contract, call)
            except ActivityError as err:
                if failure_type(err) in f.PARKING:
                    raise self._unrecoverable(err) from err
                return self._tool_error(spec, call, failure_message(err))
        text = json.dumps(output, sort_keys=True)
        self._note("tool_result", f"{call.name} -> {text}", {"id": call.id})
        return text

    async def _activity_tool(self, contract: ToolContract, call: ToolCall) -> dict[str, Any]:
        info = workflow.info()
        request = ToolRequest(
            tool=call.name,
            arguments=call.arguments,
            idempotency_key=f"{info.workflow_id}/{call.id}",
            identity=self._identity(),
        )
        result = await workflow.execute_activity(
            run_tool,
            request,
            start_to_close_timeout=contract.timeout,
            heartbeat_timeout=min(contract.timeout, timedelta(seconds=10)),
            retry_policy=contract.retry_policy(),
            summary=f"tool {call.name} · turn {self._turn}",
        )
        return result.output

    def _tool_error(self, spec: AgentSpec, call: ToolCall, problem: str) -> str:
        self._tool_errors += 1
        self._note("error", problem, {"id": call.id})
        if self._tool_errors > spec.max_tool_errors:
            raise EndRun(
                "gave_up", f"stopped after {self._tool_errors} failed tool calls: {problem}"
            )
        return json.dumps({"error": problem})

    async def _durable(self, spec: AgentSpec, contract: ToolContract, args: Any) -> dict[str, Any]:
        if isinstance(args, WaitForEventInput):
            return await self._wait_for_event(spec, args)
        if isinstance(args, SleepUntilInput):
            return await self._sleep_until(args)
        raise ApplicationError(
            f"durable tool {contract.name} has no implementation", non_retryable=True
        )

    async def _wait_for_event(self, spec: AgentSpec, args: WaitForEventInput) -> dict[str, Any]:
        policy = spec.wait_policy(args.events)
        timeout = min(timedelta(hours=args.timeout_hours), policy.max_wait)
        names = " or ".join(args.events)
        started = self._start_waiting(f"event {names}", timeout)
        try:
            await workflow.wait_condition(lambda: self._inbox.has(args.events), timeout=timeout)
        except TimeoutError:
            hours = timeout.total_seconds() / 3600
            self._note("wait", f"no {names} within {hours:g} h")
            if policy.on_timeout == "end_run":
                raise EndRun(
                    "timed_out", f"gave up waiting for {names} after {hours:g} h"
                ) from None
            return WaitForEventOutput(status="timeout", waited_hours=hours).model_dump(mode="json")
        finally:
            self._stop_waiting()
        received = self._inbox.take(args.events)
        assert received is not None
        waited = (workflow.now() - started).total_seconds() / 3600
        return WaitForEventOutput(
            status="received",
            event=received.event.name,
            payload=received.event.payload,
            waited_hours=round(waited, 3),
        ).model_dump(mode="json")

    async def _sleep_until(self, args: SleepUntilInput) -> dict[str, Any]:
        delay = args.until - workflow.now()
        if delay > timedelta(0):
            self._start_waiting(f"the time {args.until.isoformat()}", delay)
            try:
                await workflow.sleep(delay)
            finally:
                self._stop_waiting()
        return {"woke_at": workflow.now().isoformat()}

    # ---- state helpers -------------------------------------------------------------------

    def _start_waiting(self, what: str, timeout: timedelta):  # type: ignore[no-untyped-def]
        now = workflow.now()
        self._waiting_for, self._waiting_since = what, now
        self._set_status("waiting_event")
        workflow.set_current_details(
            f"Waiting since {now:%Y-%m-%d %H:%M} UTC for {what} (gives up after {timeout})."
        )
        self._note("wait", f"waiting for {what}, at most {timeout}")
        return now

    def _stop_waiting(self) -> None:
        self._waiting_for = self._waiting_since = None
        self._set_status("running")
        workflow.set_current_details("")

    def _set_status(self, status: AgentStatusValue) -> None:
        if status != self._status:
            workflow.upsert_search_attributes([search.AGENT_STATUS.value_set(status)])
        self._status = status

    def _finish(self, outcome: Outcome, answer: str) -> AgentResult:
        self._set_status("completed" if outcome == "completed" else "failed")
        self._note("note", f"run ended: {outcome}")
        return AgentResult(
            agent=self._run.agent,
            outcome=outcome,
            answer=answer,
            turns=self._turn,
            usage=self._usage,
        )

    def _note(self, kind: Any, text: str, data: dict[str, Any] | None = None) -> None:
        self._transcript.append(
            TranscriptEntry(
                at=workflow.now(), turn=self._turn, kind=kind, text=text, data=data or {}
            )
        )

    def _resolve(self, run: AgentRun) -> tuple[AgentSpec, dict[str, Any]]:
        """The agent's spec and its input with defaults filled in, or a clear failure."""
        try:
            spec = get_agent(run.agent)
            data = spec.input_model.model_validate(run.input).model_dump(mode="json")
        except UnknownAgent as exc:
            raise ApplicationError(str(exc), type="InvalidRun", non_retryable=True) from None
        except ValidationError as exc:
            raise ApplicationError(f"input does not fit agent {run.agent!r}: {problems(exc)}",
                                   type="InvalidRun", non_retryable=True) from None
        self._spec = spec
        return spec, data

    def _identity(self) -> Identity:
        assert self._spec is not None
        return Identity(
            agent=self._spec.name,
            agent_version=self._spec.version,
            workflow_id=workflow.info().workflow_id,
            principal=self._run.principal,
            scopes=self._run.scopes,
        )

    def _route(self) -> list[str]:
        if self._run.model_route:
            return self._run.model_route
        return list(self._spec.model_route) if self._spec else []

    def _max_turns(self) -> int:
        if self._run.max_turns is not None:
            return self._run.max_turns
        return self._spec.max_turns if self._spec else 0

    def _partial_answer(self) -> str:
        last = next(
            (m.content for m in reversed(self._messages) if m.role == "assistant" and m.content), ""
        )
        return f"turn budget of {self._max_turns()} used up. Last word: {last}".strip()
