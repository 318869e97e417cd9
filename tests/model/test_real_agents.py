"""Real agents against a real model: llama.cpp's server with SmolLM2-135M, through an
`openai-compatible:` route. A 135M model calls tools with plausible JSON and nonsense values,
so a run may complete, or end the way the failure taxonomy says for what the model did: a tool's
error it reads, a repair turn for arguments it cannot use, a runaway parked. Never a failed
workflow task. Each test holds the run's record (status, transcript, history, audit) up against
what the server really sent (tests/model/tap.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.client import WorkflowHistory

from durable_agents._vocab.schemas import TranscriptEntry
from durable_agents.settings import Settings
from durable_agents.testing import AgentEnvironment, RunRecord
from tests.model.agents import INVOICES, PAID
from tests.model.conftest import audit
from tests.model.tap import WireTap

pytestmark = pytest.mark.timeout(400)

# How a run may end for what the model did, and what its record must show then.
ENDINGS = {
    "completed": "the model answered in words",
    "needs_attention": "parked: a runaway, repairs used up, the context window full",
    "failed": "stopped after too many bad tool calls",
    "budget_exhausted": "the turn budget used up",
}


def task_failures(history: WorkflowHistory) -> list[str]:
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for e in history.events
        if e.HasField("workflow_task_failed_event_attributes")
    ]


def of(record: RunRecord, *kinds: str) -> list[TranscriptEntry]:
    return [e for e in record.transcript if e.kind in kinds]


def check_record(record: RunRecord, history: WorkflowHistory, tap: WireTap) -> list[dict[str, Any]]:
    """What every run here must show, whatever the model did; returns the server's replies."""
    status = record.status
    assert not task_failures(history), task_failures(history)
    assert status.status in ENDINGS, (status.status, status.last_error)
    replies = tap.completions()
    assert replies, "the server answered nothing"
    # Usage as the server counted it, every reply the loop could use. (A reply whose tool
    # arguments are malformed fails its call: its tokens are not counted, a known gap.)
    used = [r for r in replies if _readable(r)]
    assert status.usage.input_tokens == sum(r["usage"]["prompt_tokens"] for r in used)
    assert status.usage.output_tokens == sum(r["usage"]["completion_tokens"] for r in used)
    assert (status.usage.input_tokens > 0) == bool(used)
    # The model's own words and calls, in the transcript as the server sent them.
    said = [m["content"] for r in replies if (m := r["choices"][0]["message"])["content"]]
    assert [e.text for e in of(record, "assistant")] == said
    calls = [
        (c["function"]["name"], c["function"]["arguments"])
        for r in replies
        for c in r["choices"][0]["message"].get("tool_calls") or []
    ]
    made = of(record, "tool_call")
    repairs = [e for e in of(record, "error") if "malformed model reply" in e.text]
    assert len(made) + len(repairs) >= len(calls) - len(repairs)
    for entry, (name, arguments) in zip(made, _usable(calls), strict=False):
        # The name from tool_calls, never the legacy function_call's ("find_invoice:").
        assert entry.text == f"{name}({json.dumps(json.loads(arguments), sort_keys=True)})"
    if status.status == "completed":
        assert record.answer == said[-1] == replies[-1]["choices"][0]["message"]["content"]
        assert replies[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    elif status.status == "needs_attention":
        assert status.last_error is not None
        # A runaway; repairs used up; or the server's own steps (its tool-call format writes
        # the arguments, then asks the model again) ran past its context window.
        assert any(
            mark in status.last_error
            for mark in ("runaway:", "MalformedModelOutput", "ContextWindowExceeded")
        ), status.last_error
    elif status.status == "failed":
        assert record.answer.startswith("stopped after ") and "bad tool calls" in record.answer
    else:
        assert "turn budget" in record.answer
    return replies


def answered(record: RunRecord) -> list[tuple[TranscriptEntry, TranscriptEntry]]:
    """Each tool call with what answered it (its result, or the error the model read), past an
    approval's entries."""
    entries, pairs = record.transcript, []
    for i, entry in enumerate(entries):
        if entry.kind == "tool_call":
            after = (e for e in entries[i + 1 :] if e.kind not in ("approval", "wait"))
            answer = next(after, None)
            assert answer is not None and answer.kind in ("tool_result", "error"), entry
            pairs.append((entry, answer))
    return pairs


def _readable(reply: dict[str, Any]) -> bool:
    """Whether the loop could read the reply: every tool call's arguments a JSON object."""
    calls = reply["choices"][0]["message"].get("tool_calls") or []
    pairs = [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    return len(_usable(pairs)) == len(pairs)


def _usable(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    usable = []
    for name, arguments in calls:
        try:
            if isinstance(json.loads(arguments), dict):
                usable.append((name, arguments))
        except json.JSONDecodeError:
            pass
    return usable


async def test_an_agent_with_a_read_only_tool(agents: AgentEnvironment, tap: WireTap) -> None:
    record = await agents.run("lookup", {"invoice_id": "INV-1"}, model_route=[tap.route],
                              timeout=300)  # fmt: skip
    history = await agents.env.client.get_workflow_handle(record.workflow_id).fetch_history()
    replies = check_record(record, history, tap)
    print(f"\nlookup: {record.status.status} ({record.status.last_error or ''})")
    for entry in record.transcript:
        print(f"  {entry.turn} {entry.kind}: {entry.text[:160]}")

    # Every call the model made was answered: the tool's result, or its error for the model.
    for call, answer in answered(record):
        asked = json.loads(call.text[len("find_invoice(") : -1])["invoice_id"]
        if asked.strip().upper() in INVOICES:
            assert (
                answer.kind == "tool_result" and INVOICES[asked.strip().upper()][0] in answer.text
            )
        else:
            assert answer.kind == "error" and "ids are INV-1, INV-2" in answer.text, answer
    # The legacy function_call llama.cpp adds names the tool with a stray colon: not read.
    legacy = [r["choices"][0]["message"].get("function_call") for r in replies]
    assert all(f is None or f["name"].endswith(":") or f["name"] == "" for f in legacy)


async def test_an_agent_whose_tool_needs_approval(
    agents: AgentEnvironment, tap: WireTap, settings: Settings
) -> None:
    record = await agents.run(
        "payer",
        {"invoice_id": "INV-2", "amount": "980.00"},
        model_route=[tap.route],
        approvals={"pay_invoice": ("olga", True, "checked by hand")},
        timeout=300,
    )
    history = await agents.env.client.get_workflow_handle(record.workflow_id).fetch_history()
    check_record(record, history, tap)
    print(f"\npayer: {record.status.status} ({record.status.last_error or ''})")
    for entry in record.transcript:
        print(f"  {entry.turn} {entry.kind}: {entry.text[:160]}")
    # Each call the model made waited for payables: olga approved it, the tool then paid or
    # told the model why not, and the audit log keeps the arguments the model wrote.
    trail = audit(record.workflow_id, settings)
    print("  audit:", [(t["entry"]["kind"], t["entry"]["outcome"]) for t in trail])
    approvals = {a.tool_call_id: a for a in record.status.approvals}
    for call, answer in answered(record):
        arguments = json.loads(call.text[len("pay_invoice(") : -1])
        approval = approvals[call.data["id"]]
        assert (approval.state, approval.decided_by) == ("approved", "olga")
        assert approval.arguments == arguments
        decided = [t["entry"] for t in trail if t["entry"]["kind"] == "approval"
                   and t["entry"]["key"].endswith(approval.id)]  # fmt: skip
        assert decided and decided[0]["approver"] == "olga"
        effects = [t["entry"] for t in trail if t["entry"]["key"].startswith(
            f"{record.workflow_id}/{call.data['id']}")]  # fmt: skip
        [effect] = effects
        assert effect["details"]["arguments"] == arguments
        if INVOICES.get(arguments["invoice_id"], ("", ""))[1] == arguments["amount"]:
            assert effect["outcome"] == "ok" and answer.kind == "tool_result"
            assert f"{record.workflow_id}/{call.data['id']}" in PAID
        else:
            assert effect["outcome"] == "ToolRejected" and answer.kind == "error"
