"""How runs look in a terminal."""

from __future__ import annotations

from typing import Any

from workflows.models import AgentResult, AgentStatus, TranscriptEntry

_MARK = {
    "task": "▶",
    "assistant": "🤖",
    "tool_call": "→",
    "tool_result": "←",
    "event": "⚡",
    "wait": "⏳",
    "note": "•",
    "error": "✖",
}


def transcript(entries: list[TranscriptEntry]) -> str:
    lines = []
    for e in entries:
        text = e.text if len(e.text) <= 400 else e.text[:400] + " …"
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
    if s.events_pending:
        rows.append(("events pending", ", ".join(s.events_pending)))
    if s.last_error:
        rows.append(("last error", s.last_error))
    return "\n".join(f"{k:>14}: {v}" for k, v in rows)


def _history(s: AgentStatus) -> str:
    size = (
        f"{s.history_bytes / 1e6:.2f} MB" if s.history_bytes >= 1e5 else f"{s.history_bytes} bytes"
    )
    if not s.continued:
        return size
    return f"{size} in this run; continued as new {s.continued} time(s), still one run"


def result(r: AgentResult) -> str:
    return (
        f"outcome: {r.outcome} after {r.turns} turns "
        f"({r.usage.input_tokens} tokens in, {r.usage.output_tokens} out)\n{r.answer}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no runs"
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k] or "")) for r in rows)) for k in keys}
    head = "  ".join(k.upper().ljust(widths[k]) for k in keys)
    body = ["  ".join(str(r[k] or "").ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join([head, *body])
