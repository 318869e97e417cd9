"""Who may act: the people runs act for and approve for, and the groups they belong to.

A `Directory` is data, loaded from a TOML file at start-up and checked there, so that a
deployment states its own people and approver groups without touching code:

    people = ["alice", "desk"]          # principals who are in no group (optional)
    services = ["nightly"]              # service principals: runs code starts act for them
    [groups]
    operators = ["olga", "omar"]

After loading it is an immutable value with no I/O, so checking a person is deterministic in
the workflow (and on replay).

Names are compared in one normal form (`normalize`: NFKC, trimmed, case-folded), so `Sam`,
`sam ` and `sam` are one person, and the four-eyes rule cannot be walked around with spelling.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from durable_agents import _toml
from durable_agents.errors import DirectoryError, UnknownPerson

NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
MAX_NAME = 64
GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_NAME_RULE = f"a letter, then letters, digits, '.', '_' or '-'; at most {MAX_NAME}"
_GROUP_RULE = "a lowercase letter, then lowercase letters, digits or '-'; at most 64"
_KEYS = ("people", "services", "groups")


def normalize(name: str) -> str:
    """The one form a name is compared in: NFKC, surrounding space trimmed, case-folded."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def _shown(normal: str) -> str:
    return repr(normal if len(normal) <= MAX_NAME else normal[:MAX_NAME] + "…")


def _is_name(normal: str) -> bool:
    return len(normal) <= MAX_NAME and NAME.fullmatch(normal) is not None


def _frozen_groups(groups: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({g: frozenset(groups[g]) for g in sorted(groups)})


@dataclass(frozen=True)
class Directory:
    """The people runs may act for and approve for, and the approver groups.

    `people` holds everyone, group members included. Build one with `Directory.load(path)`
    (checked, names normalised) or directly from names already in normal form.
    """

    people: frozenset[str] = frozenset()
    """Every person and service account a run may act for or be approved by."""
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    """Approver groups by name, each with its members (who are in `people` too)."""
    services: frozenset[str] = frozenset()
    """Service principals (in `people` too): runs started by code with no person behind it
    (a schedule, another workflow) act for one of them, with no person's proof or grant. A
    run started for anyone else needs that person's proof."""

    def __post_init__(self) -> None:
        where = "Directory(...)"
        groups = _frozen_groups(self.groups)
        for group, names in groups.items():
            _check_group_name(where, group)
            if not names:
                raise DirectoryError(f"{where}: groups.{group}: has no members: list at least one")
            for name in sorted(names):
                _check_normal(where, f"groups.{group}", name)
        for name in sorted(self.people | self.services):
            _check_normal(where, "people", name)
        people = frozenset(self.people).union(self.services, *groups.values())
        object.__setattr__(self, "people", people)
        object.__setattr__(self, "services", frozenset(self.services))
        object.__setattr__(self, "groups", groups)

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        """Read and check a directory file; any problem is a DirectoryError of one line."""
        data = _toml.read(path, DirectoryError, "the directory")
        return cls.from_mapping(data, where=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "directory") -> Directory:
        """A directory from parsed TOML (or any mapping of that shape), checked as `load` does;
        `where` names the source in error messages."""
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise DirectoryError(
                f"{where}: unknown key {unknown[0]!r}: a directory has only "
                f"'people' and 'services' (lists of names) and '[groups]' (group = [names])"
            )
        people = _names(where, "people", data.get("people", []))
        services = _names(where, "services", data.get("services", []))
        raw_groups = data.get("groups", {})
        if not isinstance(raw_groups, Mapping):
            raise DirectoryError(
                f"{where}: groups: must be a table ([groups] with group = [names]), "
                f"not {type(raw_groups).__name__}"
            )
        groups: dict[str, frozenset[str]] = {}
        for group, members in raw_groups.items():
            _check_group_name(where, group)
            names = _names(where, f"groups.{group}", members)
            if not names:
                raise DirectoryError(
                    f"{where}: groups.{group}: has no members: list at least one or remove it"
                )
            groups[group] = frozenset(names)
        return cls(people=frozenset(people), groups=groups, services=frozenset(services))

    def person(self, name: str) -> str:
        """`name` in normal form if it is a person of the directory; else UnknownPerson,
        saying what is wrong and who is known."""
        if not isinstance(name, str):
            raise UnknownPerson(f"a person's name must be a string, not {type(name).__name__}")
        normal = normalize(name)
        if not normal:
            raise UnknownPerson("the name is empty: say who (e.g. --as hana)")
        if not _is_name(normal):
            raise UnknownPerson(f"{_shown(normal)} is not a name ({_NAME_RULE})")
        if normal not in self.people:
            raise UnknownPerson(
                f"{normal!r} is not in the directory; known: {', '.join(sorted(self.people))}"
            )
        return normal

    def members(self, group: str) -> frozenset[str]:
        """The group's members; empty for a group the directory does not know."""
        return self.groups.get(group, frozenset())

    def knows_group(self, group: str) -> bool:
        return group in self.groups

    def merged(self, other: Directory) -> Directory:
        """Both directories' people and groups; a group both define must have the same
        members in both (else DirectoryError)."""
        groups = dict(self.groups)
        for group, names in other.groups.items():
            mine = groups.get(group)
            if mine is not None and mine != names:
                raise DirectoryError(
                    f"group {group!r} is defined twice with different members "
                    f"({', '.join(sorted(mine))} and {', '.join(sorted(names))}): "
                    "define it in one directory file only"
                )
            groups[group] = names
        return Directory(
            people=self.people | other.people,
            groups=groups,
            services=self.services | other.services,
        )


def _check_group_name(where: str, group: object) -> None:
    if not isinstance(group, str) or not GROUP_NAME.fullmatch(group):
        raise DirectoryError(
            f"{where}: groups.{group}: {group!r} is not a group name ({_GROUP_RULE})"
        )


def _check_normal(where: str, key: str, name: object) -> None:
    if not isinstance(name, str) or normalize(name) != name or not _is_name(name):
        raise DirectoryError(
            f"{where}: {key}: {name!r} is not a name in normal form ({_NAME_RULE}; lowercase)"
        )


def _names(where: str, key: str, value: object) -> list[str]:
    """A list of names from the file, normalised and checked; no name twice."""
    if not isinstance(value, list):
        raise DirectoryError(
            f'{where}: {key}: must be a list of names, e.g. ["olga", "omar"], '
            f"not {type(value).__name__}"
        )
    seen: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise DirectoryError(
                f"{where}: {key}: {item!r} is not a name: write names as strings in quotes"
            )
        normal = normalize(item)
        if not _is_name(normal):
            raise DirectoryError(f"{where}: {key}: {_shown(normal)} is not a name ({_NAME_RULE})")
        if normal in seen:
            raise DirectoryError(f"{where}: {key}: {normal!r} is listed twice: list it once")
        seen.append(normal)
    return seen
