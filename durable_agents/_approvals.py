"""Approval policy: which tool calls wait for a person, who may decide, and for how long.

Agents act freely where a mistake is cheap and stop for a person where it is not. The policy is
plain data (and pure predicates over the call's arguments), resolved inside the workflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from durable_agents._directory import Directory

if TYPE_CHECKING:
    from durable_agents._spec import ToolContract


@dataclass(frozen=True)
class Escalation:
    """After `after` without a decision, more people may decide (and are reminded)."""

    after: timedelta
    """How long after the request."""
    groups: tuple[str, ...] = ()
    """Approver groups (of the directory) who may decide from then on."""
    principals: tuple[str, ...] = ()
    """People who may decide from then on."""


@dataclass(frozen=True)
class ApprovalRule:
    """One rule of a policy; the first rule whose tool and condition match decides."""

    tool: str
    """The tool whose calls the rule covers."""
    description: str
    """Why the call needs a person, as the approver reads it."""
    needed: bool = True
    """False: calls matching this rule go ahead without approval."""
    when: Callable[[Mapping[str, Any]], bool] | None = None
    """A pure predicate over the validated arguments (e.g. an amount over 100.00)."""
    principals: tuple[str, ...] = ()
    """People who may decide."""
    groups: tuple[str, ...] = ()
    """Approver groups (of the directory) whose members may decide."""
    expires_after: timedelta = timedelta(days=3)
    """How long the request stays open."""
    escalation: Escalation | None = None
    """Who else may decide after a while."""
    on_expiry: Literal["reject", "park"] = "reject"
    """`reject`: expiry counts as a rejection; `park`: the run waits as needs_attention until
    an operator resumes it, which asks again."""
    editable: bool | tuple[str, ...] = False
    """Edit then approve: True lets the approver change any argument before approving, a
    tuple only the arguments it names (e.g. `("subject", "body")`, not the recipient). The tool
    runs with the edited arguments, the model is told what changed, and the record keeps both
    digests and who edited."""

    def editable_in(self, arguments: Mapping[str, Any]) -> list[str]:
        """The arguments of this call a person may change before approving."""
        if self.editable is True:
            return sorted(arguments)
        if not self.editable:
            return []
        return [name for name in self.editable if name in arguments]

    def matches(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        return tool == self.tool and (self.when is None or self.when(arguments))

    def approvers(self, escalated: bool) -> tuple[list[str], list[str]]:
        """(principals, groups) who may decide, with the escalation's once it happened."""
        principals, groups = list(self.principals), list(self.groups)
        if escalated and self.escalation:
            principals += self.escalation.principals
            groups += self.escalation.groups
        return principals, groups


@dataclass(frozen=True)
class ApprovalPolicy:
    """An agent's rules; irreversible tools need approval unless a rule says otherwise."""

    rules: tuple[ApprovalRule, ...] = ()
    """Checked in order; the first whose tool and condition match decides."""
    default_groups: tuple[str, ...] = ("operators",)
    """Who decides an irreversible call no rule covers."""
    default_expiry: timedelta = timedelta(days=3)
    """How long such a request stays open."""
    self_approval: bool = False
    """False (four eyes): the person a run acts for may not approve its own requests."""

    def rule_for(self, contract: ToolContract, arguments: Mapping[str, Any]) -> ApprovalRule | None:
        for rule in self.rules:
            if rule.matches(contract.name, arguments):
                return rule if rule.needed else None
        if contract.side_effect == "irreversible":
            return ApprovalRule(
                tool=contract.name,
                description=f"{contract.name} is irreversible",
                groups=self.default_groups,
                expires_after=self.default_expiry,
            )
        return None


def may_decide(
    principal: str, approvers: list[str], groups: list[str], directory: Directory
) -> bool:
    return principal in approvers or any(principal in directory.members(g) for g in groups)
