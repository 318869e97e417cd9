"""Who may act: the people runs act for and approve for, and the groups they belong to.

A static directory, versioned with the code, so that checking a person is deterministic in the
workflow. A deployment with an identity provider replaces this module's data.

Names are compared in one normal form (`normalize`: NFKC, trimmed, case-folded), so `Sam`,
`sam ` and `sam` are one person, and the four-eyes rule cannot be walked around with spelling.
"""

from __future__ import annotations

import re
import unicodedata

GROUPS: dict[str, frozenset[str]] = {
    "operators": frozenset({"olga", "omar"}),
    "hr-managers": frozenset({"hana", "hugo"}),
    "support-leads": frozenset({"sam", "lee"}),
    "support-managers": frozenset({"maria"}),
}
# People and service accounts that runs act for, beyond the approvers in GROUPS.
PRINCIPALS: frozenset[str] = frozenset(
    {
        "alice",
        "desk",
        "agent-desk",
        "ops-anna",
        "hr-demo",
        "mallory",
        "tester",
        "bench",
        # Runs started by another run or by code with no person behind it.
        "system",
    }
)
PEOPLE: frozenset[str] = PRINCIPALS.union(*GROUPS.values())

NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
MAX_NAME = 64


class UnknownPerson(ValueError):
    """A name that is not a person of the directory (or not a name at all)."""


def members(group: str) -> frozenset[str]:
    return GROUPS.get(group, frozenset())


def normalize(name: str) -> str:
    """The one form a name is compared in: NFKC, surrounding space trimmed, case-folded."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def person(name: str) -> str:
    """`name` in normal form if it is a person of the directory; else UnknownPerson, saying
    what is wrong and who is known."""
    if not isinstance(name, str):
        raise UnknownPerson(f"a person's name must be a string, not {type(name).__name__}")
    normal = normalize(name)
    if not normal:
        raise UnknownPerson("the name is empty: say who (e.g. --as hana)")
    if len(normal) > MAX_NAME or not NAME.fullmatch(normal):
        shown = normal if len(normal) <= MAX_NAME else normal[:MAX_NAME] + "…"
        raise UnknownPerson(
            f"{shown!r} is not a name (a letter, then letters, digits, '.', '_' or '-'; "
            f"at most {MAX_NAME})"
        )
    if normal not in PEOPLE:
        raise UnknownPerson(
            f"{normal!r} is not in the directory; known: {', '.join(sorted(PEOPLE))}"
        )
    return normal
