"""The `refund` script: the support-refund saga, one tool call per reply.

Like every script it is a pure function of the conversation: the next step follows from the tool
results already present. `update_ticket` runs more than once (refund_pending, then resolved), so
results are matched to the call that produced them by tool-call id and told apart by the status
in that call's arguments. A failed step is retried once, except `issue_refund`: a refused or
failed refund ends the run with an explanation, and an approval that was rejected or expired ends
it without further tool calls (the agent loop runs the saga's compensations itself).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sim.conversation import Conversation, Reply, ToolCall, Turn, first_json_object, is_error

REFUND_STEPS = (
    "verify_customer",
    "check_refund_eligibility",
    "ask_human",
    "update_ticket",
    "place_hold",
    "issue_refund",
)
MAX_ATTEMPTS = 2


class _Next(Exception):
    """Carries the reply to send now (the pending tool call, or a final text)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text or "tool call")
        self.reply = reply


def _amount(raw: Any) -> str:
    """'250' -> '250.00'; anything that is not a finite number is passed on as given."""
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return str(raw)
    return str(value.quantize(Decimal("0.01"))) if value.is_finite() else str(raw)


def _error_text(turn: Turn) -> str:
    value = turn.value()
    if isinstance(value, dict) and value.get("error") is not None:
        error = value["error"]
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        return str(error)
    return turn.text


class _Saga:
    """One pass over the conversation: which steps are done, and with what results."""

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.data = first_json_object(conv.first_user_text())
        self.amount = _amount(self.data.get("amount"))
        self.order_id = str(self.data.get("order_id"))
        self.ticket_id = str(self.data.get("ticket_id"))
        self._args = {c.id: c.args for t in conv.turns for c in t.tool_calls if c.id}

    def results(self, tool: str, status: str | None = None) -> list[Turn]:
        """Results of `tool`, oldest first; with `status`, only calls made with that status."""
        found = []
        for turn in self.conv.results(tool):
            args = self._args.get(turn.tool_call_id or "")
            if status is None or (isinstance(args, dict) and args.get("status") == status):
                found.append(turn)
        return found

    def refund_id(self) -> str | None:
        for turn in reversed(self.results("issue_refund")):
            value = turn.value()
            if isinstance(value, dict) and value.get("refund_id"):
                return str(value["refund_id"])
        return None

    def need(self, tool: str, args: dict[str, Any], status: str | None = None) -> dict[str, Any]:
        """The step's successful result, or raise `_Next` with its (re)try or a final text."""
        results = self.results(tool, status)
        if results and not is_error(results[-1]):
            value = results[-1].value()
            return value if isinstance(value, dict) else {"result": value}
        if sum(1 for r in results if is_error(r)) >= MAX_ATTEMPTS:
            refund_id = self.refund_id()
            outcome = (
                f"Refund {refund_id} was issued; the ticket needs a manual update."
                if refund_id
                else "Nothing was refunded."
            )
            raise _Next(
                Reply(
                    text=f"I could not complete the refund of {self.amount} on order "
                    f"{self.order_id}: {tool} failed twice (last error: "
                    f"{_error_text(results[-1])}). {outcome}"
                )
            )
        raise _Next(Reply(tool_calls=[ToolCall(tool, args)]))

    def ticket(self, status: str, note: str) -> dict[str, Any]:
        args = {"ticket_id": self.ticket_id, "status": status, "note": note}
        return self.need("update_ticket", args, status=status)

    def issue(self, hold_id: str) -> dict[str, Any]:
        """The irreversible step: never retried by the script, and gated by the agent loop."""
        args = {"order_id": self.order_id, "amount": self.amount, "hold_id": hold_id}
        results = self.results("issue_refund")
        if not results:
            raise _Next(Reply(tool_calls=[ToolCall("issue_refund", args)]))
        last = results[-1]
        value = last.value()
        if isinstance(value, dict) and value.get("approval") in ("rejected", "expired"):
            expired = value["approval"] == "expired"
            who = value.get("decided_by") or ("the approval deadline" if expired else "an approver")
            why = value.get("reason") or (
                "no approver decided in time" if expired else "no reason given"
            )
            raise _Next(
                Reply(
                    text=f"The refund of {self.amount} was rejected by {who}: {why}. "
                    "Nothing was refunded."
                )
            )
        if is_error(last) or not (isinstance(value, dict) and value.get("refund_id")):
            problem = _error_text(last) if is_error(last) else f"unexpected result {last.text}"
            raise _Next(
                Reply(
                    text=f"The refund of {self.amount} on order {self.order_id} could not be "
                    f"issued: {problem}. No refund was confirmed; hold {hold_id} was placed "
                    "and should be released."
                )
            )
        return value

    def run(self) -> Reply:
        data, amount, order_id = self.data, self.amount, self.order_id
        customer_id = data.get("customer_id")
        who = self.need("verify_customer", {"customer_id": customer_id, "email": data.get("email")})
        if not who.get("verified"):
            return Reply(
                text=f"Customer {customer_id} could not be verified (the email does not match "
                "our records), so nothing was done: no hold, no refund, no ticket change."
            )
        check = self.need("check_refund_eligibility", {"order_id": order_id, "amount": amount})
        if not check.get("eligible"):
            why = check.get("reason") or "not eligible"
            self.ticket("open", f"Refund not possible: {why}")
            return Reply(
                text=f"The refund of {amount} on order {order_id} is not possible: {why}. "
                f"Ticket {self.ticket_id} stays open with a note; nothing was refunded."
            )
        reason = str(data.get("reason") or "").strip()
        if not reason:
            question = (
                f"What is the customer's reason for the refund of {amount} on order {order_id}?"
            )
            answer = self.need("ask_human", {"question": question})
            reason = str(answer.get("answer") or "").strip()
            if not reason:
                return Reply(
                    text=f"No one gave a reason for the refund of {amount} on order {order_id}, "
                    "so I did not request it. Nothing was refunded."
                )
        self.ticket("refund_pending", f"Refund of {amount} requested: {reason}")
        hold = self.need("place_hold", {"order_id": order_id, "amount": amount})
        hold_id = str(hold.get("hold_id"))
        refund = self.issue(hold_id)
        refund_id = refund["refund_id"]
        self.ticket("resolved", f"Refunded {amount} (refund {refund_id}).")
        name = who.get("name") or customer_id
        return Reply(
            text=f"Customer {name} ({customer_id}) was verified. Hold {hold_id} was placed for "
            f"{amount} on order {order_id}, refund {refund_id} was issued, and ticket "
            f"{self.ticket_id} is resolved. Reason: {reason.rstrip('.')}."
        )


def refund(conv: Conversation) -> Reply:
    """Verify, check eligibility, (ask why), note, hold, refund, resolve; one call per reply."""
    try:
        return _Saga(conv).run()
    except _Next as step:
        return step.reply
