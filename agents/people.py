"""Who belongs to which approver group.

A static directory, versioned with the code, so that checking an approver is deterministic in
the workflow. A deployment with an identity provider replaces this module's data.
"""

from __future__ import annotations

GROUPS: dict[str, frozenset[str]] = {
    "operators": frozenset({"olga", "omar"}),
    "hr-managers": frozenset({"hana", "hugo"}),
    "support-leads": frozenset({"sam", "lee"}),
    "support-managers": frozenset({"maria"}),
}


def members(group: str) -> frozenset[str]:
    return GROUPS.get(group, frozenset())
