"""Deterministic 'models': scripts chosen by the request's `model` field.

A script is a pure function of the conversation. It decides which step comes next from the tool
results already present, never from server-side state, so a retried or replayed request gets the
same answer, and a repair request ("Your previous reply ...") simply redoes the pending step.
Register a new script by adding a function to SCRIPTS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.conversation import Conversation, Reply, ToolCall, Turn, first_json_object, is_error
from sim.refund_script import refund

Script = Callable[[Conversation], Reply]

ONBOARDING_STEPS = ("create_mailbox", "order_laptop", "wait_for_event", "send_email")


def task_input(conv: Conversation) -> dict[str, Any]:
    """The task's structured input: the first JSON object in the first user message."""
    return first_json_object(conv.first_user_text())


def last_value(conv: Conversation, tool: str) -> dict[str, Any]:
    """The latest result of `tool` as a dict ({} if absent or not an object)."""
    results = conv.results(tool)
    value = results[-1].value() if results else {}
    return value if isinstance(value, dict) else {}


def _first_name(data: dict[str, Any]) -> str:
    parts = str(data.get("full_name", "there")).split()
    return parts[0] if parts else "there"


def _welcome_body(conv: Conversation, data: dict[str, Any]) -> str:
    mailbox = last_value(conv, "create_mailbox")
    laptop = last_value(conv, "order_laptop")
    return (
        f"Hi {_first_name(data)},\n\n"
        f"Welcome to Acme! We are delighted that you are joining us on {data.get('start_date')}. "
        f"Your new work mailbox is {mailbox.get('address', 'being set up')}, and you can sign in "
        f"to it on your first day. Your {data.get('laptop_model', 'new')} laptop is on its way to "
        f"{data.get('ship_to')} and should arrive by {laptop.get('eta', 'your start date')}. "
        "If anything is unclear before you start, just reply to this email.\n\n"
        "See you soon,\nThe People Team"
    )


def _onboarding_args(tool: str, conv: Conversation, data: dict[str, Any]) -> dict[str, Any]:
    employee_id = data.get("employee_id")
    if tool == "create_mailbox":
        return {"employee_id": employee_id, "full_name": data.get("full_name")}
    if tool == "order_laptop":
        model = data.get("laptop_model")
        return {"employee_id": employee_id, "model": model, "ship_to": data.get("ship_to")}
    if tool == "wait_for_event":
        return {"events": ["clearance_granted"], "timeout_hours": 168}
    return {
        "to": data.get("personal_email"),
        "subject": f"Welcome to the team, {_first_name(data)}!",
        "body": _welcome_body(conv, data),
    }


def _onboarding_summary(conv: Conversation, data: dict[str, Any]) -> str:
    mailbox = last_value(conv, "create_mailbox")
    laptop = last_value(conv, "order_laptop")
    email = last_value(conv, "send_email")
    return (
        f"Onboarding for {data.get('full_name')} ({data.get('employee_id')}) is complete: "
        f"the mailbox {mailbox.get('address')} was created, laptop order {laptop.get('order_id')} "
        f"was placed (ETA {laptop.get('eta')}), security clearance was granted, and the welcome "
        f"email was sent to {data.get('personal_email')} (message id {email.get('message_id')})."
    )


def onboarding(conv: Conversation) -> Reply:
    """Mailbox, laptop, wait for clearance, welcome email; one tool call per reply."""
    data = task_input(conv)
    for tool in ONBOARDING_STEPS:
        results = conv.results(tool)
        if not results or is_error(results[-1]):
            if sum(1 for r in results if is_error(r)) >= 2:
                return Reply(
                    text=f"I could not complete the onboarding: {tool} failed twice "
                    f"(last error: {results[-1].text}). Please look into it."
                )
            return Reply(tool_calls=[ToolCall(tool, _onboarding_args(tool, conv, data))])
        if tool == "wait_for_event" and last_value(conv, tool).get("status") != "received":
            return Reply(
                text=f"Security clearance for {data.get('full_name')} was not granted in time, "
                "so no welcome email was sent. The mailbox and laptop order are in place."
            )
    verdict = last_value(conv, "send_email")
    if verdict.get("approval") in ("rejected", "expired"):
        who = verdict.get("decided_by") or "nobody in time"
        why = verdict.get("reason") or "no reason given"
        return Reply(
            text=f"The welcome email to {data.get('full_name')} was not sent: its approval was "
            f"{verdict['approval']} ({who}: {why}). The mailbox and laptop order are in place."
        )
    return Reply(text=_onboarding_summary(conv, data))


def bench(conv: Conversation) -> Reply:
    """Call `echo` K times (input {"turns": K}, default 3), then finish."""
    turns = int(task_input(conv).get("turns", 3))
    done = len(conv.results("echo"))
    if done < turns:
        return Reply(tool_calls=[ToolCall("echo", {"text": f"turn {done + 1}"})])
    return Reply(text=f"done after {turns} turns")


def reader(conv: Conversation) -> Reply:
    """Read K×P documents of C characters, P per reply; optionally email a note (an irreversible,
    approval-gated step) after `email_at` documents. Input {"turns", "chars", "per_turn",
    "email_at", "arg_chars"}; `arg_chars` pads the first call's arguments (an oversized input).
    The answer counts what came back in full, as JSON, and what came as a preview only."""
    data = task_input(conv)
    turns, chars = int(data.get("turns", 3)), int(data.get("chars", 2000))
    per = int(data.get("per_turn", 1))
    results = conv.results("read_document")
    done = len(results)
    email_at = data.get("email_at")
    if email_at is not None and done >= int(email_at) and not conv.results("send_email"):
        note = {"to": "hana@acme.example", "subject": "Reading", "body": f"read {done} so far"}
        return Reply(tool_calls=[ToolCall("send_email", note)])
    if done < turns * per:
        calls = []
        for i in range(per):
            args: dict[str, Any] = {"doc_id": f"doc-{done + i + 1}", "chars": chars}
            if done == 0 and i == 0 and data.get("arg_chars"):
                args["doc_id"] = "x" * int(data["arg_chars"])
            calls.append(ToolCall("read_document", args))
        return Reply(tool_calls=calls)
    full = [r.value() for r in results if isinstance(r.value(), dict)]
    total = sum(len(str(v.get("text", ""))) for v in full)
    errors = sum(1 for v in full if "error" in v)
    previews = done - len(full)
    return Reply(
        text=f"read {done} documents: {total} characters in full, {previews} previews, "
        f"{errors} errors"
    )


SUMMARIZE_MARKER = "You compact an agent's conversation"
SUMMARY_HEADER = "Summary of the earlier conversation:\n"


def summarize(conv: Conversation) -> Reply:
    """A faithful, short summary of the transcript handed over in the user message."""
    lines = [line for line in conv.last_user_text().splitlines() if line.strip()]
    # Tool results verbatim (they hold the facts), what the assistant said in brief.
    kept = [
        ln if ln.startswith("tool ") else ln[:80]
        for ln in lines
        if ln.startswith(("tool ", "assistant"))
    ]
    return Reply(text=SUMMARY_HEADER + "\n".join(f"- {k}" for k in kept))


def research(conv: Conversation) -> Reply:
    """Fan out one fact_finder per topic in one reply, then merge what came back."""
    data = task_input(conv)
    results = conv.results("spawn_agent")
    if not results:
        if data.get("recurse"):
            args = {"agent": "research", "task": data.get("question", ""), "input": data}
            return Reply(tool_calls=[ToolCall("spawn_agent", args)])
        return Reply(
            tool_calls=[
                ToolCall(
                    "spawn_agent",
                    {
                        "agent": "fact_finder",
                        "task": f"Research {topic}",
                        "input": {"topic": topic},
                    },
                )
                for topic in data.get("topics", [])
            ]
        )
    lines = []
    for turn in results:
        value = turn.value() if isinstance(turn.value(), dict) else {}
        if value.get("status") == "completed":
            lines.append(f"- {value.get('answer', '')}")
        else:
            lines.append(f"- not researched ({value.get('status')}): {value.get('answer', '')}")
    return Reply(text=f"Findings on {data.get('question', '')}:\n" + "\n".join(lines))


def fact_finder(conv: Conversation) -> Reply:
    """One topic, one paragraph; the topic `wait` waits for an event (to test cancellation)."""
    topic = task_input(conv).get("topic", "")
    if topic == "wait" and not conv.results("wait_for_event"):
        return Reply(
            tool_calls=[ToolCall("wait_for_event", {"events": ["never"], "timeout_hours": 48})]
        )
    return Reply(text=f"{topic}: three sources agree on the main facts about {topic}.")


def looper(conv: Conversation) -> Reply:
    """A model stuck in a loop: the same echo call, forever (for runaway detection)."""
    return Reply(tool_calls=[ToolCall("echo", {"text": "are we there yet?"})])


def pingpong(conv: Conversation) -> Reply:
    """Busy but going nowhere: ping, pong, ping, pong… (idle-turn detection)."""
    text = "ping" if len(conv.results("echo")) % 2 == 0 else "pong"
    return Reply(tool_calls=[ToolCall("echo", {"text": text})])


def echo(conv: Conversation) -> Reply:
    """No tools: answer with the last user message, a smoke test for the wire formats."""
    return Reply(text=conv.last_user_text())


def invoice(conv: Conversation) -> Reply:
    """Look an invoice up (`lookup_invoice`), pay it if it is open (`pay_invoice`, irreversible:
    approval-gated), then report. Input {"invoice_id"}: the model of the invoice-agent example
    and of the plugin tests, whose tools are theirs, not the sim's."""
    invoice_id = str(task_input(conv).get("invoice_id", "INV-1"))
    found = last_value(conv, "lookup_invoice")
    if not found:
        return Reply(tool_calls=[ToolCall("lookup_invoice", {"invoice_id": invoice_id})])
    paid = last_value(conv, "pay_invoice")
    if not paid and found.get("status") == "open":
        args = {"invoice_id": invoice_id, "amount": found.get("amount", "0")}
        return Reply(tool_calls=[ToolCall("pay_invoice", args)])
    outcome = paid.get("status") or paid.get("approval") or found.get("status")
    return Reply(text=f"invoice {invoice_id}: {outcome}")


def _mcp_value(turn: Turn, field: str) -> dict[str, Any]:
    """An MCP tool's answer as a dict: the object itself or one that holds it (structured
    content wrapped by a client), found by a field it must have; {} if there is none."""
    value = turn.value()
    if isinstance(value, str):
        value = first_json_object(value)
    if not isinstance(value, dict):
        return {}
    if field in value or "approval" in value:
        return value
    inner = [v for v in value.values() if isinstance(v, dict) and field in v]
    return inner[0] if inner else {}


def _error_of(turn: Turn) -> str:
    value = turn.value()
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error or turn.text)


def helpdesk(conv: Conversation) -> Reply:
    """Close a ticket through the sim's MCP tools: lookup_ticket, then close_ticket (approved
    first: destructive), then a summary. Input {"ticket_id", "resolution"?}."""
    data = task_input(conv)
    ticket_id = str(data.get("ticket_id", ""))
    looked = conv.results("lookup_ticket")
    if not looked:
        return Reply(tool_calls=[ToolCall("lookup_ticket", {"ticket_id": ticket_id})])
    ticket = _mcp_value(looked[-1], "ticket_id")
    if is_error(looked[-1]) or not ticket:
        return Reply(text=f"I could not look up ticket {ticket_id}: {_error_of(looked[-1])}.")
    if ticket.get("status") == "resolved":
        return Reply(text=f"Ticket {ticket_id} is already resolved; nothing to do.")
    found = ticket.get("customer")
    customer: dict[str, Any] = found if isinstance(found, dict) else {}
    closed = conv.results("close_ticket")
    if not closed:
        name = str(customer.get("name") or "there").split()[0]
        resolution = str(data.get("resolution") or "").strip() or (
            f'Hi {name}, we have looked into "{ticket.get("subject")}" and it is now resolved. '
            "Just reply to this email if anything is still not right."
        )
        args = {"ticket_id": ticket_id, "resolution": resolution}
        return Reply(tool_calls=[ToolCall("close_ticket", args)])
    verdict = _mcp_value(closed[-1], "message_id")
    if verdict.get("approval") in ("rejected", "expired"):
        who = verdict.get("decided_by") or "nobody in time"
        why = verdict.get("reason") or "no reason given"
        return Reply(
            text=f"Ticket {ticket_id} stays open: closing it was {verdict['approval']} "
            f"({who}: {why}). The customer was not emailed."
        )
    if is_error(closed[-1]) or not verdict.get("message_id"):
        return Reply(text=f"Ticket {ticket_id} could not be closed: {_error_of(closed[-1])}.")
    return Reply(
        text=f"Ticket {ticket_id} ({ticket.get('subject')}) for {customer.get('name')} is "
        f"resolved; the resolution was emailed to {verdict.get('emailed_to')} "
        f"(message {verdict.get('message_id')})."
    )


SCRIPTS: dict[str, Script] = {
    "onboarding": onboarding,
    # The same behaviour under a second name: a fallback model that faults aimed at the
    # first one do not reach.
    "onboarding-backup": onboarding,
    "refund": refund,
    "bench": bench,
    "reader": reader,
    "skimmer": reader,
    "looper": looper,
    "pingpong": pingpong,
    "research": research,
    "fact_finder": fact_finder,
    "echo": echo,
    "invoice": invoice,
    "helpdesk": helpdesk,
}
