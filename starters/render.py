"""How runs look in a terminal.

Everything shown here may have come from outside (a model's reply, a tool's result, an operator's
reason, an event's name): it goes through `printable`, so a newline or an escape sequence is
shown, never obeyed, and no one can forge a line of the output. `--json` prints values exactly.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

from durable_agents._vocab.text import printable

if TYPE_CHECKING:
    from durable_agents._vocab.live import LiveEvent
    from durable_agents._vocab.schemas import AgentResult, AgentStatus, Approval, TranscriptEntry

_MARK = {
    "task": "▶",
    "assistant": "🤖",
    "tool_call": "→",
    "tool_result": "←",
    "event": "⚡",
    "wait": "⏳",
    "note": "•",
    "error": "✖",
    "refused": "⊘",
}
TRANSCRIPT_LIMIT = 400  # characters of one transcript line's text
CELL_LIMIT = 80  # characters of one table cell
FIELD_LIMIT = 1000  # characters of one status field


def live(run_id: str, e: LiveEvent) -> str:
    """One step of a watched run on one line; a status line names what the run waits for, and
    a pending approval the command that decides it."""
    if e.kind == "status":
        line = f"{e.at:%H:%M:%S} t{e.turn:<2} ◆ status: {printable(e.status, 40)}"
        if e.status == "waiting_approval":
            line += f" (decide: agentctl approvals show {printable(run_id, 200)})"
        elif e.status == "needs_attention":
            line += f" (agentctl resume|retry-turn|abort {printable(run_id, 200)})"
        return line
    text = printable(e.text, TRANSCRIPT_LIMIT)
    return f"{e.at:%H:%M:%S} t{e.turn:<2} {_MARK.get(e.kind, '·')} {text}"


def transcript(entries: list[TranscriptEntry]) -> str:
    lines = []
    for e in entries:
        text = printable(e.text, TRANSCRIPT_LIMIT)
        lines.append(f"{e.at:%Y-%m-%d %H:%M:%S} t{e.turn:<2} {_MARK.get(e.kind, '·')} {text}")
    return "\n".join(lines)


def status(s: AgentStatus) -> str:
    rows = [
        ("run", s.workflow_id),
        ("agent", s.agent),
        ("status", s.status),
        ("on behalf of", s.principal),
        ("turn", f"{s.turn} of {s.max_turns}"),
        ("tokens", f"{s.usage.input_tokens} in / {s.usage.output_tokens} out"),
        ("cost", f"{s.cost_usd:.4f} USD"),
        ("model route", " → ".join(s.model_route)),
        ("history", _history(s)),
    ]
    if s.waiting_for:
        since = f" since {s.waiting_since:%Y-%m-%d %H:%M} UTC" if s.waiting_since else ""
        rows.append(("waiting for", f"{s.waiting_for}{since}"))
    if s.question:
        rows.append(("question", s.question))
    if s.events_pending:
        rows.append(("events pending", ", ".join(s.events_pending)))
    pending = [a for a in s.approvals if a.state == "pending"]
    if pending:
        rows.append(
            ("approvals", ", ".join(f"{a.id} ({a.tool}, digest {a.digest})" for a in pending))
        )
    if s.last_error:
        rows.append(("last error", s.last_error))
    if s.build_id or s.builds:
        ran = " → ".join(s.builds)
        rows.append(("version", f"{s.build_id or '-'}" + (f" (ran on {ran})" if ran else "")))
    for r in s.refused:  # the latest signals the run would not take
        rows.append(("refused", f"{r.at:%Y-%m-%d %H:%M} {r.handler} from {r.sender}: {r.reason}"))
    return "\n".join(f"{k:>14}: {printable(str(v), FIELD_LIMIT)}" for k, v in rows)


def _history(s: AgentStatus) -> str:
    size = (
        f"{s.history_bytes / 1e6:.2f} MB" if s.history_bytes >= 1e5 else f"{s.history_bytes} bytes"
    )
    if not s.continued:
        return size
    return f"{size} in this run; continued as new {s.continued} time(s), still one run"


def result(r: AgentResult) -> str:
    # The answer is the model's text: its lines are kept, each made safe to read and indented,
    # so no line of it can pass for the outcome line.
    answer = "\n".join("  " + printable(line) for line in r.answer.splitlines())
    return (
        f"outcome: {r.outcome} after {r.turns} turns "
        f"({r.usage.input_tokens} tokens in, {r.usage.output_tokens} out)\n{answer}"
    )


def table(rows: list[dict[str, Any]], limit: int = CELL_LIMIT) -> str:
    if not rows:
        return "no runs"
    keys = list(rows[0])
    cells = [
        {k: printable(str(r[k] if r[k] is not None else ""), limit) for k in keys} for r in rows
    ]
    widths = {k: max(len(k), *(len(c[k]) for c in cells)) for k in keys}
    head = "  ".join(k.upper().ljust(widths[k]) for k in keys)
    body = ["  ".join(c[k].ljust(widths[k]) for k in keys) for c in cells]
    return "\n".join([head, *body])


def safe_json(value: Any) -> str:
    """Pretty JSON that is safe to show: JSON already escapes control characters below U+0020;
    the rest (DEL, C1 controls, format characters such as U+202E, separators) are written as
    `\\uXXXX` escapes too, so the text is still the same JSON, exactly, and cannot repaint a
    terminal or reorder what is read."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    # JSON's own line breaks stay (in its strings a newline is already `\\n`).
    return "".join(f"\\u{ord(ch):04x}" if ch != "\n" and _unsafe(ch) else ch for ch in text)


def controls_escaped(text: str) -> str:
    """`text` with control and format characters escaped (`\\x1b`, `\\u202e`) and nothing else
    changed: for messages that already quote what they show (`repr`), where `printable`'s doubled
    backslashes would only add noise."""
    if text.isprintable():
        return text
    return "".join(
        (f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}") if _unsafe(ch) else ch
        for ch in text
    )


def _unsafe(ch: str) -> bool:
    return ch != "\u200d" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")


def approval(a: Approval, agent: str = "") -> str:
    """One approval in full: what is decided (every argument), by whom, until when."""
    may = ", ".join(a.requested_for + [f"group {g}" for g in a.groups]) or "-"
    rows = [
        ("approval", f"{a.id} of run {a.run}" + (f" ({agent})" if agent else "")),
        ("state", a.state),
        ("tool", a.tool),
        ("rule", a.rule),
        ("may decide", may),
        ("requested", f"{a.requested_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("expires", f"{a.expires_at:%Y-%m-%d %H:%M:%S} UTC"),
    ]
    for esc in a.escalations:
        to = ", ".join(esc.principals + [f"group {g}" for g in esc.groups])
        rows.append(("escalated", f"{esc.at:%Y-%m-%d %H:%M:%S} UTC to {to}"))
    if a.decided_by:
        when = f" at {a.decided_at:%Y-%m-%d %H:%M:%S} UTC" if a.decided_at else ""
        rows.append(("decided", f"{a.state} by {a.decided_by}{when}"))
    if a.reason:
        rows.append(("reason", a.reason))
    rows.append(("digest", a.digest))
    if a.editable and a.state == "pending":
        rows.append(("editable", ", ".join(a.editable) + " (approve --edit NAME=VALUE)"))
    if a.edited_arguments is not None:
        rows.append(("edited", f"by {a.decided_by}: digest {a.edited_digest}"))
    head = "\n".join(f"{k:>10}: {printable(str(v), FIELD_LIMIT)}" for k, v in rows)
    args = "\n".join("    " + line for line in safe_json(a.arguments).splitlines())
    text = f"{head}\n arguments:\n{args}"
    if a.edited_arguments is not None:
        ran = "\n".join("    " + line for line in safe_json(a.edited_arguments).splitlines())
        text += f"\n  ran with:\n{ran}"
    return text
