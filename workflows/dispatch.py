"""Carrying out one tool call: validation, approval gates, the activity, the saga's record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from durable_agents._approvals import ApprovalPolicy, ApprovalRule
    from durable_agents._builtin import SpawnAgentInput
    from durable_agents._spec import AgentSpec, ToolContract, problems
    from durable_agents._vocab import chain
    from durable_agents._vocab import failures as f
    from durable_agents._vocab.names import CALL_MCP_TOOL, RUN_TOOL
    from durable_agents._vocab.schemas import (
        AgentRun,
        Approval,
        Identity,
        MCPTarget,
        Message,
        Outcome,
        ResultHandling,
        ToolCall,
        ToolRequest,
        ToolResult,
    )
    from durable_agents.workflows import gates, mcp_tools, payloads, saga, subagents
    from durable_agents.workflows.exits import EndRun, aborted
    from durable_agents.workflows.state import RunState
    from durable_agents.workflows.turns import cancelled, failure_message, failure_type
    from durable_agents.workflows.waits import park, run_durable


# Approved with edits: the tool runs with the edited arguments (no run before it had them).
EDITS_PATCH = "edit-then-approve-v1"


@dataclass
class ToolDispatcher:
    """Runs the model's tool calls for one run; the model reads what `dispatch` returns."""

    state: RunState
    identity: Identity
    run: AgentRun

    async def dispatch(self, spec: AgentSpec, call: ToolCall) -> Message:
        """Run one tool call and return the message the model reads as its result."""
        outcome = await self._dispatch(spec, call)
        if isinstance(outcome, Message):
            return outcome
        return Message(role="tool", tool_call_id=call.id, name=call.name, content=outcome)

    async def _dispatch(self, spec: AgentSpec, call: ToolCall) -> str | Message:
        arguments = json.dumps(call.arguments, sort_keys=True)
        self.state.note("tool_call", f"{call.name}({arguments})", {"id": call.id})
        contract = self._contract(spec, call.name)
        if contract is None:
            known = ", ".join(s.name for s in mcp_tools.schemas(self.state, spec))
            return self._tool_error(spec, call, f"unknown tool {call.name!r}; tools: {known}")
        try:
            args = contract.input_model.model_validate(call.arguments)
        except ValidationError as exc:
            return self._tool_error(spec, call, f"bad arguments for {call.name}: {problems(exc)}")
        wrong = mcp_tools.problems(self.state, call.name, call.arguments)
        if contract.mcp_server and wrong:
            return self._tool_error(spec, call, f"bad arguments for {call.name}: {wrong}")
        missing = [s for s in contract.required_scopes if s not in self.identity.scopes]
        if missing:
            granted = ", ".join(self.identity.scopes) or "none"
            return self._tool_error(
                spec,
                call,
                f"{f.PERMISSION_DENIED}: {call.name} needs scope {', '.join(missing)}, which "
                f"this run was not granted (granted: {granted}); ask the person you act for",
            )
        if isinstance(args, SpawnAgentInput):
            output = await subagents.spawn(self.state, spec, self.run, call, args)
        elif contract.durable:
            output = await run_durable(self.state, spec, self.run.principal, args, call.id)
        else:
            data = args.model_dump(mode="json")
            if self._unwinding() and contract.side_effect != "read_only":
                problem = (
                    f"{call.name} refused: the run is being undone ({self.state.saga.unwinding})"
                )
                return self._tool_error(spec, call, problem)
            rule = self._policy(spec).rule_for(contract, data)
            edits = ""
            if rule is not None:
                decided = await self._gate(spec, rule, call, data)
                if isinstance(decided, str):
                    return decided
                if decided.edited_arguments is not None and workflow.patched(EDITS_PATCH):
                    # Edit then approve: the tool runs with what the approver wrote (checked
                    # against its input model when the decision came), the model hears so.
                    args = contract.input_model.model_validate(decided.edited_arguments)
                    data = args.model_dump(mode="json")
                    edits = gates.told_of_edits(decided)
            try:
                result = await self._activity_tool(spec, contract, call, args)
            except payloads.TooLarge as exc:
                return self._tool_error(spec, call, f"{f.PAYLOAD_TOO_LARGE}: {exc}")
            except ActivityError as err:
                if cancelled(err):
                    raise
                if failure_type(err) in f.PARKING:
                    retried = await self._park_tool(spec, call, err)
                    if retried is None:
                        return self._tool_error(spec, call, failure_message(err))
                    result = retried
                else:
                    problem = failure_message(err)
                    # A refusal is the model's to handle; a step that failed for good is not.
                    given_up = failure_type(err) not in f.BACK_TO_MODEL
                    if spec.saga and given_up:
                        self.unwind_later("compensated", f"{call.name} failed: {problem}")
                    return self._tool_error(spec, call, problem)
            saga.record(self.state, contract, call, data, result.output)
            if edits:  # the model reads it with the results, before its next reply
                self.state.waiting.follow_ups.append(Message(role="user", content=edits))
            if self.state.store.by_reference:
                message = chain.tool_message(call.id, call.name, result)
                payloads.produced(self.state, message)
                self._succeeded(call, message.content)
                return message
            output = result.output
        text = json.dumps(output, sort_keys=True)
        self._succeeded(call, text)
        return text

    def _succeeded(self, call: ToolCall, text: str) -> None:
        self.state.note("tool_result", f"{call.name} -> {text}", {"id": call.id})
        self.state.progress.successes += 1

    def _unwinding(self) -> bool:
        return self.state.saga.unwind_outcome is not None

    async def _park_tool(
        self, spec: AgentSpec, call: ToolCall, err: ActivityError
    ) -> ToolResult | None:
        """A tool broke its contract: wait for an operator. The output if `resume` retried it
        successfully, None if `retry-turn` hands the problem to the model."""
        while True:
            reason = f"turn {self.state.turn}: {failure_type(err)}: {failure_message(err)}"
            action = await park(self.state, reason)
            if action == "abort":
                raise aborted(self.state) from None
            if action == "retry_turn":
                return None
            contract = self._contract(spec, call.name)
            assert contract is not None
            try:
                args = contract.input_model.model_validate(call.arguments)
                return await self._activity_tool(spec, contract, call, args)
            except ActivityError as again:
                if cancelled(again):
                    raise
                if failure_type(again) not in f.PARKING:
                    return None  # an ordinary failure now: the model hears of it
                err = again

    def _contract(self, spec: AgentSpec, name: str) -> ToolContract | None:
        """The agent's own tool, or an MCP server's as the run listed it."""
        return spec.tool(name) or mcp_tools.contract(self.state, name)

    async def _activity_tool(
        self, spec: AgentSpec, contract: ToolContract, call: ToolCall, args: BaseModel
    ) -> ToolResult:
        handling = None
        if self.state.store.by_reference:
            handling = ResultHandling(
                tool_call_id=call.id,
                inline_bytes=spec.inline_result_bytes,
                view=spec.large_results,
                preview_chars=spec.preview_chars,
            )
        request = ToolRequest(
            tool=call.name,
            arguments=args.model_dump(mode="json"),
            idempotency_key=f"{workflow.info().workflow_id}/{call.id}",
            identity=self.identity,
            result=handling,
            mcp=None
            if contract.mcp_server is None
            else MCPTarget(
                agent=spec.name,
                server=contract.mcp_server,
                tool=self._server_name(call.name),
                side_effect=contract.side_effect,
                scopes=list(contract.required_scopes),
            ),
        )
        payloads.check_size(request, f"the input of {call.name}", self.state.store.max_payload)
        summary = f"tool {call.name} · turn {self.state.turn}"
        if contract.mcp_server is not None:
            summary = f"MCP {contract.mcp_server}.{request.mcp.tool if request.mcp else ''}"
            mcp_result: ToolResult = await workflow.execute_activity(
                CALL_MCP_TOOL,
                request,
                result_type=ToolResult,
                start_to_close_timeout=contract.timeout,
                heartbeat_timeout=min(contract.timeout, timedelta(seconds=10)),
                retry_policy=contract.retry_policy(),
                summary=f"{summary} · turn {self.state.turn}",
            )
            return mcp_result
        if self.state.store.by_reference and contract.runs_locally():
            try:
                local: ToolResult = await workflow.execute_local_activity(
                    RUN_TOOL,
                    request,
                    result_type=ToolResult,
                    start_to_close_timeout=contract.timeout,
                    retry_policy=contract.retry_policy(),
                    summary=summary,
                )
            except ActivityError:
                raise
            except FailureError as err:
                # A local activity's failure arrives bare: wrap it as a scheduled one's, so
                # every failure strategy reads it the same way.
                raise ActivityError(
                    f"local activity run_tool ({call.name}) failed",
                    scheduled_event_id=0,
                    started_event_id=0,
                    identity="",
                    activity_type="run_tool",
                    activity_id="",
                    retry_state=None,
                ) from err
            return local
        result: ToolResult = await workflow.execute_activity(
            RUN_TOOL,
            request,
            result_type=ToolResult,
            task_queue=contract.task_queue,
            start_to_close_timeout=contract.timeout,
            heartbeat_timeout=min(contract.timeout, timedelta(seconds=10)),
            retry_policy=contract.retry_policy(),
            summary=summary,
        )
        return result

    async def _gate(
        self, spec: AgentSpec, rule: ApprovalRule, call: ToolCall, data: dict[str, Any]
    ) -> str | Approval:
        """Wait for a decision: the approval if approved, else the tool result the model
        reads."""
        while True:
            approval = gates.pending_for(self.state, call.id)  # carried over a continue-as-new
            if approval is None:
                approval = gates.open_request(self.state, rule, call, data)
                who = ", ".join(approval.requested_for + [f"group {g}" for g in approval.groups])
                self.state.note(
                    "approval",
                    f"{approval.id} requested: {approval.summary} ({rule.description}); "
                    f"may decide: {who}",
                    {"approval": approval.id, "digest": approval.digest},
                )
            await gates.await_decision(self.state, rule, approval, safe_point=True)
            if approval.state == "approved":
                return approval
            if approval.state == "expired" and rule.on_expiry == "park":
                action = await park(self.state, f"approval {approval.id} expired undecided")
                if action == "abort":
                    raise aborted(self.state)
                if action == "resume":
                    continue  # ask again; retry-turn tells the model it expired
            by = f" by {approval.decided_by}" if approval.decided_by else ""
            if spec.saga:
                self.unwind_later(
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
            self.state.note("tool_result", f"{call.name} -> {text}", {"id": call.id})
            return text

    def _server_name(self, exposed: str) -> str:
        found = mcp_tools.tool(self.state, exposed)
        return found.name if found else exposed

    def unwind_later(self, outcome: Outcome, reason: str) -> None:
        if self.state.saga.unwind_outcome is None:
            self.state.saga.unwind_outcome, self.state.saga.unwinding = outcome, reason

    @staticmethod
    def _policy(spec: AgentSpec | None) -> ApprovalPolicy:
        return (spec.approvals if spec else None) or ApprovalPolicy()

    def _tool_error(self, spec: AgentSpec, call: ToolCall, problem: str) -> str:
        state = self.state
        state.progress.tool_errors += 1
        state.note("error", problem, {"id": call.id})
        if state.progress.tool_errors > spec.max_tool_errors:
            raise EndRun(
                "gave_up", f"stopped after {state.progress.tool_errors} bad tool calls: {problem}"
            )
        return json.dumps({"error": problem})
