"""The generic agent loop as a Temporal workflow.

Each turn asks the model (the `call_llm` activity) and carries out the tool calls it returns:
durable tools (waits, timers) run here in the workflow, every other tool is a `run_tool` activity
with an idempotency key. All state lives in the workflow, rebuilt from history on replay.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError
    from temporalio.contrib.workflow_streams import WorkflowStream

    from durable_agents._budgets import Budget
    from durable_agents._routes import parse_route
    from durable_agents._spec import AgentSpec, problems
    from durable_agents._vocab import names
    from durable_agents._vocab.carried import CarriedState
    from durable_agents._vocab.schemas import (
        AgentResult,
        AgentRun,
        AgentStatus,
        AgentStatusValue,
        Identity,
        Message,
        Outcome,
        ToolCall,
        TranscriptEntry,
    )
    from durable_agents.errors import InvalidRoute, UnknownPerson
    from durable_agents.workflows import (
        catalog,
        compaction,
        live,
        mcp,
        payloads,
        proofs,
        runaway,
        saga,
        search,
        spending,
        starts,
    )
    from durable_agents.workflows.dispatch import ToolDispatcher
    from durable_agents.workflows.exits import ContinueRun, EndRun
    from durable_agents.workflows.handlers import MessageHandlers
    from durable_agents.workflows.state import RunState
    from durable_agents.workflows.turns import ask_model

# Continue as new past this much history, unless the run says otherwise.
CONTINUE_AFTER = 4_000_000
# How each outcome shows in AgentStatus: `failed` is kept for failures.
TERMINAL: dict[Outcome, AgentStatusValue] = {
    "completed": "completed",
    "rejected": "rejected",
    "aborted": "aborted",
    "timed_out": "timed_out",
    "budget_exhausted": "budget_exhausted",
    "turn_budget_exhausted": "budget_exhausted",
    "compensated": "failed",  # a step failed for good; the saga undid the rest
    "gave_up": "failed",
}


# With versioning, runs are pinned (the worker's default_versioning_behavior, workers/main.py: a
# behaviour on the definition is refused by workers without deployment options): a run stays on
# the version that started it and moves onto a new one only at a safe point of its own choosing
# (RunState.upgrade_due), by continuing as new.
@workflow.defn(name=names.WORKFLOW)
class AgentWorkflow(MessageHandlers):
    @workflow.init
    def __init__(self, run: AgentRun) -> None:
        self._run = run
        self._spec: AgentSpec | None = None
        self._state = RunState()
        # Live progress (workflows/live.py): built here, as Workflow Streams require; what the
        # chain's earlier runs published goes on from where they left it.
        prior = run.carried.live if run.carried is not None else None
        self.live = live.Live(WorkflowStream(prior), prior)

    @workflow.query(
        name=names.STATUS_QUERY,
        description="What the run does or waits for, usage, cost, approvals, refused messages.",
    )
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
            waiting_for=s.waiting.waiting_for,
            waiting_since=s.waiting.waiting_since,
            waiting_until=s.waiting.waiting_until,
            last_error=s.last_error,
            events_pending=[r.event.name for r in s.waiting.inbox],
            approvals=s.approvals,
            question=s.waiting.question.text
            if s.waiting.question and s.waiting.question.answer is None
            else None,
            cost_usd=s.spending.cost_usd,
            continued=s.chain.continued,
            history_bytes=workflow.info().get_current_history_size(),
            refused=s.refused,
            build_id=self._build(),
            agent_version=s.identity.agent_version if s.identity else "",
            builds=s.chain.builds,
        )

    @workflow.query(
        name=names.CARRIED_QUERY,
        description="What the run would hand a new run if it continued as new now (its state, "
        "as this build writes it): `agentctl worker --check` reads it with a new build's models.",
    )
    def carried_state(self) -> CarriedState:
        # Not `carry()`, which may mark a patch: a query issues no commands.
        return CarriedState.model_validate(self._state.model_dump(mode="json"))

    @workflow.query(name=names.TRANSCRIPT_QUERY, description="The run's record, entry by entry.")
    def transcript(self) -> list[TranscriptEntry]:
        return self._state.transcript

    @workflow.query(
        name="conversation",
        description="The messages the model reads next turn (since the last continue-as-new).",
    )
    def conversation(self) -> list[Message]:
        """The messages the model reads next turn (large results as their previews). After a
        continue-as-new, those since: the earlier ones were carried by reference
        (`status().continued`; their content is in the message store and earlier runs)."""
        return self._state.messages

    # ---- the loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, run: AgentRun) -> AgentResult:
        # A change that alters the commands a run issues goes behind `workflow.patched`, with a
        # history in tests/histories/ recorded by the code before it (README: "Tests").
        if run.carried is not None:
            self._state = RunState.model_validate(run.carried, from_attributes=True)
        spending.begin(self._state)  # a chain's first run notes its start, for the deadline
        problem = self._check_run(run)
        if problem is None and starts.applies(self._run):
            self._run, problem = await starts.prove(self._run, self._state)
        run = self._run
        self._limits(run)
        workflow.upsert_search_attributes(
            [
                search.AGENT_NAME.value_set(run.agent),
                search.PRINCIPAL.value_set(run.principal),
                search.AGENT_STATUS.value_set(self._state.status),
            ]
        )
        try:
            if problem is not None:
                raise ApplicationError(problem, type="InvalidRun", non_retryable=True)
            spec, data = self._resolve(run)
            if self._state.scopes is None:
                self._state.scopes = list(spec.scopes() if run.scopes is None else run.scopes)
                self._state.identity = self._identity()
            if run.carried is None and self._state.started_by is not None:
                await proofs.audit(self._state, "start", self._state.started_by, {})
            who = self._state.identity
            if who is not None and who.agent_version != spec.version:
                # Upgraded onto new code: from here on the new version acts, and says so in
                # the audit trail; the grant and the principal stay those of the run.
                self._state.note("note", f"agent version {who.agent_version} -> {spec.version}")
                self._state.identity = who.model_copy(update={"agent_version": spec.version})
                self._state.mcp.listed.clear()  # the new spec's servers and terms: list again
            build = self._build()
            if build and build not in self._state.chain.builds[-1:]:
                self._state.chain.builds.append(build)
            if run.carried is None:
                self._state.chain.upgrade = spec.upgrade == "next_turn"
                task = spec.task_message(run.task, data)
                self._state.messages.append(Message(role="user", content=task))
                self._state.note("task", task)
            await mcp.list_tools(self._state, spec)  # once per run: the list is in history
            answer = await self._loop(spec)
        except ContinueRun:
            await self._continue_as_new(run)
            raise AssertionError("continue_as_new returned") from None
        except EndRun as end:
            return await self._end(end.outcome, end.answer, undo_because=end.answer)
        except (asyncio.CancelledError, ActivityError) as exc:
            if not is_cancelled_exception(exc):
                raise
            # Cancellation is a request: a saga still undoes its steps before the run ends.
            self._state.last_error = "cancelled"
            if self._saga():
                self._state.note("note", "cancelled" + await self._undo("cancelled"))
            self._state.set_status("failed")
            raise
        except ApplicationError as err:
            self._state.last_error = err.message
            await self._undo(err.message)
            self._state.set_status("failed")
            raise
        # The answer came; a step that failed for good earlier still has the saga undo the rest.
        outcome, why = self._state.saga.unwind_outcome, self._state.saga.unwinding
        if outcome is None:
            return await self._end("completed", answer, undo_because=None)
        return await self._end(outcome, answer, undo_because=why or "")

    async def _end(self, outcome: Outcome, answer: str, undo_because: str | None) -> AgentResult:
        """The way out of the loop with a result: the saga undoes its steps first (when
        `undo_because` says why), then the run finishes."""
        if undo_because is not None:
            answer += await self._undo(undo_because)
        return await self._finish(outcome, answer)

    def _saga(self) -> bool:
        return bool(self._spec and self._spec.saga)

    async def _undo(self, because: str) -> str:
        """The one place a saga unwinds: its recorded compensations, newest first; what was
        undone, as the lines added to the run's answer."""
        if not self._saga():
            return ""
        assert self._spec is not None
        lines = await saga.unwind(self._state, self._spec, self._identity(), because)
        return "\n\nUndone, newest first:\n" + "\n".join(f"- {u}" for u in lines) if lines else ""

    async def _loop(self, spec: AgentSpec) -> str:
        state = self._state
        unanswered = self._unanswered()
        if unanswered:
            # This run continued as new in the middle of a turn: finish the turn first.
            turn = next(m for m in reversed(state.messages) if m.role == "assistant")
            with self._turn_group():
                await self._tool_calls(spec, unanswered, turn.tool_calls)
        while True:
            if state.continue_due():
                raise ContinueRun
            if state.turn >= self._max_turns():
                used_up = f"turn budget of {self._max_turns()} used up. {self._partial_answer()}"
                raise EndRun("turn_budget_exhausted", used_up.strip())
            await spending.check(state, self._budget(spec), self._partial_answer())
            if state.turn:
                await mcp.list_tools(state, spec, every_turn=True)
            state.turn += 1
            workflow.set_current_details(f"Working: turn {state.turn}.")
            state.messages.extend(state.waiting.follow_ups)
            state.waiting.follow_ups.clear()
            # In the UI, a turn's model call and tool calls form one group.
            with self._turn_group():
                await self._compact_if_large(spec)
                reply = await ask_model(state, spec, self._route(), self._run.llm_attempts)
                served = self._route()[min(state.route_index, len(self._route()) - 1)]
                spending.charge(state, self._budget(spec), served, reply)
                state.messages.append(reply.message)
                if reply.message.content:
                    state.note("assistant", reply.message.content)
                if not reply.message.tool_calls:
                    return reply.message.content
                calls = reply.message.tool_calls
                seen = state.progress.call_counts
                state.progress.turn_fresh = len(
                    [c for c in calls if runaway.call_key(c) not in seen]
                )
                state.progress.turn_successes = state.progress.successes
                await self._tool_calls(spec, calls, calls)

    def _turn_group(self) -> AbstractContextManager[None]:
        return workflow.create_event_group(f"turn {self._state.turn}").scope()

    async def _tool_calls(
        self, spec: AgentSpec, calls: list[ToolCall], turn_calls: list[ToolCall]
    ) -> None:
        """Carry out a turn's tool calls (or what is left of them), then look for a runaway."""
        state = self._state
        if len(calls) > 1 and all(c.name == "spawn_agent" for c in calls):
            # Sub-agents of one reply work at the same time (a fan-out).
            results = await asyncio.gather(*(self._tools().dispatch(spec, c) for c in calls))
            state.messages.extend(results)
        else:
            for i, call in enumerate(calls):
                if i and state.continue_due():
                    raise ContinueRun  # a safe point: the next run makes the remaining calls
                state.messages.append(await self._tools().dispatch(spec, call))
        new = min(
            state.progress.turn_fresh, state.progress.successes - state.progress.turn_successes
        )
        reason = runaway.record_turn(state, spec.runaway, turn_calls, new)
        if reason:
            await runaway.stop(state, spec, reason)

    def _unanswered(self) -> list[ToolCall]:
        """The tool calls of the last model reply that have no result yet."""
        answered = set()
        for message in reversed(self._state.messages):
            if message.role == "assistant":
                return [c for c in message.tool_calls if c.id not in answered]
            if message.role == "tool" and message.tool_call_id:
                answered.add(message.tool_call_id)
        return []

    async def _continue_as_new(self, run: AgentRun) -> None:
        """Hand the state to a new run of the same workflow id: history starts afresh. Onto
        the deployment's new version when an upgrade is due (the next turn runs the new code)."""
        self.live.stream.detach_pollers()  # its subscribers follow the chain to the next run
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state
        # Onto the deployment's new version, or where the run is (runs by size keep theirs).
        upgrade = state.upgrade_due()
        state.chain.continued += 1
        if upgrade:
            why = f"onto the deployment's new version (this run: {self._build()})"
            state.note("note", f"upgrading: continued as new {why}")
        else:
            size = workflow.info().get_current_history_size()
            state.note(
                "note",
                f"continued as new (#{state.chain.continued}) after {size:,} bytes of history",
            )
        carried = state.carry()
        carried.live = self.live.carry()
        workflow.continue_as_new(
            run.model_copy(update={"carried": carried}),
            initial_versioning_behavior=(
                workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE if upgrade else None
            ),
        )

    # ---- tools ---------------------------------------------------------------------------

    async def _compact_if_large(self, spec: AgentSpec) -> None:
        route = self._route()[min(self._state.route_index, len(self._route()) - 1)]
        ceiling = compaction.limit(spec, route, self._run.compact_at_tokens)
        store = self._state.store
        size = compaction.estimated_tokens(spec, self._state.messages, store.base_chars)
        if ceiling and size > ceiling:
            await compaction.compact(self._state, spec, route, f"about {size} tokens > {ceiling}")

    def _limits(self, run: AgentRun) -> None:
        state = self._state
        state.store.by_reference = run.conversation == "reference"
        state.store.max_payload = run.max_payload_bytes or payloads.DEFAULT_MAX_PAYLOAD
        # The naive mode keeps the whole conversation in every call and never continues as new:
        # it is the comparison for benchmarks, not a way to run agents.
        if state.store.by_reference:
            state.chain.after = run.continue_after_bytes or CONTINUE_AFTER
        info = workflow.info()
        state.chain.history_at_start = info.get_current_history_size()
        state.chain.events_at_start = info.get_current_history_length()

    def _budget(self, spec: AgentSpec) -> Budget:
        return spec.budget.overridden(self._run.budget)

    def _tools(self) -> ToolDispatcher:
        return ToolDispatcher(self._state, self._identity(), self._run)

    # ---- helpers -------------------------------------------------------------------------

    def _check_run(self, run: AgentRun) -> str | None:
        """What is wrong with the run's input as an ops tool may have sent it (a misspelt
        field, no principal, a principal who is no one), if anything; the principal is put in
        normal form. (Our own clients always send every field.)"""
        if run.model_extra:
            fields = ", ".join(sorted(AgentRun.model_fields))
            return (
                f"unknown fields {', '.join(map(repr, sorted(run.model_extra)))}; fields: {fields}"
            )
        if "principal" not in run.model_fields_set and run.proof is None:
            return "principal: say for whom the run acts (a person of the directory)"
        if "principal" not in run.model_fields_set:
            self._run = run  # the start proof names them
            return None
        try:
            principal = catalog.current().directory.person(run.principal)
            self._run = run.model_copy(update={"principal": principal})
        except UnknownPerson as exc:
            return f"principal: {exc}"
        return None

    async def _finish(self, outcome: Outcome, answer: str) -> AgentResult:
        # A decision or message whose proof is being checked gets its answer before the run
        # ends (an update left unfinished would be lost to its sender).
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.set_status(TERMINAL[outcome])
        self._state.note("note", f"run ended: {outcome}")
        workflow.set_current_details(f"Finished: {outcome}.")
        return AgentResult(
            agent=self._run.agent,
            outcome=outcome,
            answer=answer,
            turns=self._state.turn,
            usage=self._state.usage,
            cost_usd=self._state.spending.cost_usd,
        )

    def _resolve(self, run: AgentRun) -> tuple[AgentSpec, dict[str, Any]]:
        """The agent's spec and its input with defaults filled in, or a clear failure."""
        spec = catalog.spec(run.agent)  # unknown here: the task fails, another worker takes it
        try:
            data = spec.input_model.model_validate(run.input).model_dump(mode="json")
            for route in run.model_route or []:
                parse_route(route)
        except InvalidRoute as exc:
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
        if self._state.identity is not None:
            return self._state.identity
        assert self._spec is not None
        return Identity(
            agent=self._spec.name,
            agent_version=self._spec.version,
            workflow_id=workflow.info().workflow_id,
            principal=self._run.principal,
            scopes=self._state.scopes or [],
            granted_to=self._run.granted_to or "",
        )

    @staticmethod
    def _build() -> str | None:
        """The build id of the worker running this task (None without versioning)."""
        version = workflow.info().get_current_deployment_version()
        return version.build_id if version else None

    def _route(self) -> list[str]:
        if self._run.model_route:
            return self._run.model_route
        return list(self._spec.model_route) if self._spec else []

    def _max_turns(self) -> int:
        if self._run.max_turns is not None:
            return self._run.max_turns
        return self._spec.max_turns if self._spec else 0

    def _partial_answer(self) -> str:
        """The model's last word, which a run stopped at a limit ends with (after the limit)."""
        last = next(
            (
                m.content
                for m in reversed(self._state.messages)
                if m.role == "assistant" and m.content
            ),
            "",
        )
        return f"Last word: {last}" if last else ""
