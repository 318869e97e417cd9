"""Text that people read: control characters shown, never obeyed.

What an operator, an approver or a model wrote is kept exactly as sent (history, the audit
chain); only where it is shown to a person (CLI tables, transcript, audit trail, UI summaries)
does a newline, an escape sequence or a right-to-left override become visible as `\\n`,
`\\x1b`, `\\u202e`, so no one can forge a line or repaint a terminal.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Zero-width joiner: part of ordinary emoji sequences, harmless on one line.
_KEPT = {"\u200d"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    return ch not in _KEPT and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")


def printable(text: str, limit: int | None = None) -> str:
    """`text` on one line with every control, format and separator character escaped (and a
    backslash doubled, so an escape cannot be faked); past `limit` characters, cut with `…`."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
        cut = True
    else:
        cut = False
    if text.isprintable() and "\\" not in text:
        out = text
    else:
        out = "".join(_escape(ch) if ch == "\\" or _unsafe(ch) else ch for ch in text)
    return out + " …" if cut else out
