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
    from pydantic import BaseModel, ValidationError

    from activities.llm import call_llm
    from activities.tools import run_tool
    from agents import UnknownAgent, get_agent
    from agents.approvals import ApprovalPolicy, ApprovalRule
    from agents.routes import parse_route
    from agents.spec import AgentSpec, ToolContract, problems
    from workflows import failures as f
    from workflows import gates, saga, search
    from workflows.models import (
        AgentResult,
        AgentRun,
        AgentStatus,
        Approval,
        Decision,
        EventSignal,
        Identity,
        LLMReply,
        LLMRequest,
        Message,
        MessageAck,
        Outcome,
        ToolCall,
        ToolRequest,
        TranscriptEntry,
        UserMessage,
    )
    from workflows.state import RunState
    from workflows.waits import EndRun, park, run_durable

# Runs started before approval gates existed replay without them.
APPROVAL_GATES = "approval-gates-v1"

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


@workflow.defn(name="AgentWorkflow")
class AgentWorkflow:
    @workflow.init
    def __init__(self, run: AgentRun) -> None:
        self._run = run
        self._spec: AgentSpec | None = None
        self._state = RunState()
        self._gates_on = False

    # ---- messages in and out -------------------------------------------------------------

    @workflow.signal(name="event")
    def on_event(self, event: EventSignal) -> None:
        """An outside fact; kept until a `wait_for_event` asks for it."""
        self._state.put_event(event)
        self._state.note("event", f"event {event.name} received", event.model_dump(mode="json"))

    @workflow.update(name="decide")
    def decide(self, decision: Decision) -> Approval:
        """Approve or reject a pending approval; an exact repeat returns the first decision."""
        return gates.apply(self._state, self._check_decision(decision), decision)

    @decide.validator
    def _validate_decide(self, decision: Decision) -> None:
        self._check_decision(decision)  # refused here, nothing reaches history

    @workflow.signal(name="approve")
    def approve(self, decision: Decision) -> None:
        """For tools that can only signal; refusals are logged and change nothing."""
        self._signal_decision(decision.model_copy(update={"approve": True}))

    @workflow.signal(name="reject")
    def reject(self, decision: Decision) -> None:
        self._signal_decision(decision.model_copy(update={"approve": False}))

    @workflow.update(name="message")
    def message(self, msg: UserMessage) -> MessageAck:
        """The principal's answer to a pending question, or a follow-up for the next turn."""
        question = self._state.question
        self._state.note("message", f"{msg.sender}: {msg.text}")
        if question is not None and question.answer is None:
            question.answer, question.answered_by = msg.text, msg.sender
            return MessageAck(status="answered", question=question.text)
        self._state.follow_ups.append(Message(role="user", content=msg.text))
        return MessageAck(status="queued")

    @message.validator
    def _validate_message(self, msg: UserMessage) -> None:
        if msg.sender != self._run.principal:
            raise ValueError(
                f"only {self._run.principal!r}, for whom this run acts, may message it; "
                f"not {msg.sender!r}"
            )
        if not msg.text.strip():
            raise ValueError("the message is empty")

    @workflow.signal(name="resume")
    def resume(self) -> None:
        """Let a run that needs attention go on (it retries the step that stopped it)."""
        if self._state.parked_reason is not None:
            self._state.resume_requested = True

    @workflow.query(name="status")
    def status(self) -> AgentStatus:
        s = self._state
        return AgentStatus(
            agent=self._run.agent,
            workflow_id=workflow.info().workflow_id,
            principal=self._run.principal,
            status=s.status,
            turn=s.turn,
            max_turns=self._max_turns(),
            usage=s.usage,
            model_route=self._route(),
            waiting_for=s.waiting_for,
            waiting_since=s.waiting_since,
            last_error=s.last_error,
            events_pending=[r.event.name for r in s.inbox],
            approvals=s.approvals,
            question=s.question.text if s.question and s.question.answer is None else None,
        )

    @workflow.query(name="transcript")
    def transcript(self) -> list[TranscriptEntry]:
        return self._state.transcript

    # ---- the loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        # Decided once, in the first task: a run keeps the behaviour it started with. (Asking
        # at the gate itself trips a core bug when a closed run is queried.)
        self._gates_on = workflow.patched(APPROVAL_GATES)
        workflow.upsert_search_attributes(
            [
                search.AGENT_NAME.value_set(run.agent),
                search.PRINCIPAL.value_set(run.principal),
                search.AGENT_STATUS.value_set(self._state.status),
            ]
        )
        try:
            spec, data = self._resolve(run)
            task = spec.task_message(run.task, data)
            self._state.messages.append(Message(role="user", content=task))
            self._state.note("task", task)
            answer = await self._loop(spec)
        except EndRun as end:
            return self._finish(end.outcome, end.answer)
        except ApplicationError as err:
            self._state.last_error = err.message
            if self._spec and self._spec.saga:
                await saga.unwind(self._state, self._spec, self._identity(), err.message)
            self._state.set_status("failed")
            raise
        if self._state.unwind_outcome is None:
            return self._finish("completed", answer)
        reason = self._state.unwinding or ""
        undone = await saga.unwind(self._state, spec, self._identity(), reason)
        if undone:
            answer += "\n\nUndone, newest first:\n" + "\n".join(f"- {u}" for u in undone)
        return self._finish(self._state.unwind_outcome, answer)

    async def _loop(self, spec: AgentSpec) -> str:
        state = self._state
        while True:
            if state.turn >= self._max_turns():
                raise EndRun("turn_budget_exhausted", self._partial_answer())
            state.turn += 1
            workflow.set_current_details(f"Working: turn {state.turn}.")
            state.messages.extend(state.follow_ups)
            state.follow_ups.clear()
            reply = await self._ask_model(spec)
            state.messages.append(reply.message)
            if reply.message.content:
                state.note("assistant", reply.message.content)
            if not reply.message.tool_calls:
                return reply.message.content
            for call in reply.message.tool_calls:
                content = await self._dispatch(spec, call)
                state.messages.append(
                    Message(role="tool", tool_call_id=call.id, name=call.name, content=content)
                )

    async def _ask_model(self, spec: AgentSpec) -> LLMReply:
        """One model turn; a malformed reply earns a bounded number of repair messages."""
        state = self._state
        route = self._route()[0]
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
                    raise self._unrecoverable(err) from err
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

    def _unrecoverable(self, err: ActivityError) -> ApplicationError:
        kind = failure_type(err) or "ActivityFailed"
        return ApplicationError(
            f"turn {self._state.turn}: {kind}: {failure_message(err)}",
            type=kind,
            non_retryable=True,
        )

    # ---- tools ---------------------------------------------------------------------------

    async def _dispatch(self, spec: AgentSpec, call: ToolCall) -> str:
        """Run one tool call and return what the model should read as its result."""
        arguments = json.dumps(call.arguments, sort_keys=True)
        self._state.note("tool_call", f"{call.name}({arguments})", {"id": call.id})
        contract = spec.tool(call.name)
        if contract is None:
            known = ", ".join(t.name for t in spec.tools)
            return self._tool_error(spec, call, f"unknown tool {call.name!r}; tools: {known}")
        try:
            args = contract.input_model.model_validate(call.arguments)
        except ValidationError as exc:
            return self._tool_error(spec, call, f"bad arguments for {call.name}: {problems(exc)}")
        if contract.durable:
            output = await run_durable(self._state, spec, self._run.principal, args)
        else:
            data = args.model_dump(mode="json")
            rule = self._policy(spec).rule_for(contract, data)
            if rule is not None and self._gates_on:
                refused = await self._gate(spec, rule, call, data)
                if refused is not None:
                    return refused
            try:
                output = await self._activity_tool(contract, call, args)
            except ActivityError as err:
                if failure_type(err) in f.PARKING:
                    raise self._unrecoverable(err) from err
                if spec.saga:
                    self._unwind_later("compensated", f"{call.name} failed: {failure_message(err)}")
                return self._tool_error(spec, call, failure_message(err))
            saga.record(self._state, contract, call, data, output)
        text = json.dumps(output, sort_keys=True)
        self._state.note("tool_result", f"{call.name} -> {text}", {"id": call.id})
        return text

    async def _activity_tool(
        self, contract: ToolContract, call: ToolCall, args: BaseModel
    ) -> dict[str, Any]:
        request = ToolRequest(
            tool=call.name,
            arguments=args.model_dump(mode="json"),
            idempotency_key=f"{workflow.info().workflow_id}/{call.id}",
            identity=self._identity(),
        )
        result = await workflow.execute_activity(
            run_tool,
            request,
            start_to_close_timeout=contract.timeout,
            heartbeat_timeout=min(contract.timeout, timedelta(seconds=10)),
            retry_policy=contract.retry_policy(),
            summary=f"tool {call.name} · turn {self._state.turn}",
        )
        return result.output

    async def _gate(
        self, spec: AgentSpec, rule: ApprovalRule, call: ToolCall, data: dict[str, Any]
    ) -> str | None:
        """Wait for a decision; None if approved, else the tool result the model reads."""
        while True:
            approval = gates.open_request(self._state, rule, call, data)
            who = ", ".join(approval.requested_for + [f"group {g}" for g in approval.groups])
            self._state.note(
                "approval",
                f"{approval.id} requested: {approval.summary} ({rule.description}); "
                f"may decide: {who}",
                {"approval": approval.id, "digest": approval.digest},
            )
            await gates.await_decision(self._state, rule, approval)
            if approval.state == "approved":
                return None
            if approval.state == "expired" and rule.on_expiry == "park":
                await park(self._state, f"approval {approval.id} expired undecided")
                continue  # resumed: ask again
            by = f" by {approval.decided_by}" if approval.decided_by else ""
            if spec.saga:
                self._unwind_later(
                    "rejected",
                    f"{call.name} {approval.state}{by}: {approval.reason or 'no reason given'}",
                )
            result = {
                "approval": approval.state,
                "approval_id": approval.id,
                "decided_by": approval.decided_by,
                "reason": approval.reason,
            }
            text = json.dumps(result, sort_keys=True)
            self._state.note("tool_result", f"{call.name} -> {text}", {"id": call.id})
            return text

    def _unwind_later(self, outcome: Outcome, reason: str) -> None:
        if self._state.unwind_outcome is None:
            self._state.unwind_outcome, self._state.unwinding = outcome, reason

    def _check_decision(self, decision: Decision) -> Approval:
        spec = self._spec
        self_ok = self._policy(spec).self_approval if spec else False
        return gates.check(self._state, self._run.principal, self_ok, decision)

    def _signal_decision(self, decision: Decision) -> None:
        try:
            approval = self._check_decision(decision)
        except gates.DecisionRefused as exc:
            # A string, not the exception: its traceback would pin the workflow's frames.
            workflow.logger.warning(
                "refused a decision signal from %r: %s", decision.approver, str(exc)
            )
            return
        gates.apply(self._state, approval, decision)

    @staticmethod
    def _policy(spec: AgentSpec | None) -> ApprovalPolicy:
        return (spec.approvals if spec else None) or ApprovalPolicy()

    def _tool_error(self, spec: AgentSpec, call: ToolCall, problem: str) -> str:
        state = self._state
        state.tool_errors += 1
        state.note("error", problem, {"id": call.id})
        if state.tool_errors > spec.max_tool_errors:
            raise EndRun("gave_up", f"stopped after {state.tool_errors} bad tool calls: {problem}")
        return json.dumps({"error": problem})

    # ---- helpers -------------------------------------------------------------------------

    def _finish(self, outcome: Outcome, answer: str) -> AgentResult:
        self._state.set_status("completed" if outcome == "completed" else "failed")
        self._state.note("note", f"run ended: {outcome}")
        workflow.set_current_details(f"Finished: {outcome}.")
        return AgentResult(
            agent=self._run.agent,
            outcome=outcome,
            answer=answer,
            turns=self._state.turn,
            usage=self._state.usage,
        )

    def _resolve(self, run: AgentRun) -> tuple[AgentSpec, dict[str, Any]]:
        """The agent's spec and its input with defaults filled in, or a clear failure."""
        try:
            spec = get_agent(run.agent)
            data = spec.input_model.model_validate(run.input).model_dump(mode="json")
        except UnknownAgent as exc:
            raise ApplicationError(str(exc), type="InvalidRun", non_retryable=True) from None
        except ValidationError as exc:
            raise ApplicationError(
                f"input does not fit agent {run.agent!r}: {problems(exc)}",
                type="InvalidRun",
                non_retryable=True,
            ) from None
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
            (
                m.content
                for m in reversed(self._state.messages)
                if m.role == "assistant" and m.content
            ),
            "",
        )
        return f"turn budget of {self._max_turns()} used up. Last word: {last}".strip()
