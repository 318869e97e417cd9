"""Finding the agents a worker and the CLI serve: installed plugins and named modules.

Plugins are Python entry points in the group `durable_agents.agents` (an installed package
declares one), plus modules named in `DURABLE_AGENTS_PLUGINS=module[:attr],…` or with
`agentctl worker --plugin module[:attr]`. Each names an `AgentSet`, an `AgentSpec`, or a
sequence of them (a module alone means its attribute `AGENTS`). The worker and `agentctl` load
the same set, so the CLI checks a run's input against the very spec the worker will run.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from durable_agents._catalog import AgentSet, Catalog
from durable_agents._spec import AgentSpec
from durable_agents.errors import CatalogError

GROUP = "durable_agents.agents"
if TYPE_CHECKING:
    from durable_agents.settings import Settings

ENV = "DURABLE_AGENTS_PLUGINS"
_REF = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?")


def refs(text: str, where: str = ENV) -> list[str]:
    """`"a.b:x, c"` → `["a.b:x", "c"]`; anything else is a CatalogError naming `where`."""
    out = []
    for part in text.split(","):
        ref = part.strip()
        if not ref:
            continue
        if not _REF.fullmatch(ref):
            raise CatalogError(f"{where}: {ref!r} is not module[:attribute] (e.g. invoice_agent)")
        out.append(ref)
    return out


def _agent_set(value: Any, ref: str) -> AgentSet:
    if isinstance(value, AgentSet):
        return value if value.source else dataclasses.replace(value, source=ref)
    if isinstance(value, AgentSpec):
        return AgentSet((value,), source=ref)
    if isinstance(value, Sequence) and value and all(isinstance(v, AgentSpec) for v in value):
        return AgentSet(tuple(value), source=ref)
    raise CatalogError(
        f"plugin {ref!r} names a {type(value).__name__}, not an AgentSet, an AgentSpec or a "
        "list of AgentSpecs"
    )


def load(ref: str) -> AgentSet:
    """The agents `module[:attribute]` names (`AGENTS` by default), or one clear CatalogError."""
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001  (whatever a plugin raises on import is its own)
        raise CatalogError(
            f"plugin {ref!r} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    name = attribute or "AGENTS"
    if not hasattr(module, name):
        raise CatalogError(f"plugin {ref!r}: module {module_name!r} has no attribute {name!r}")
    return _agent_set(getattr(module, name), ref)


def installed() -> list[str]:
    """The plugins installed packages declare (entry points), as module[:attribute]."""
    return [ep.value.replace(" ", "") for ep in entry_points(group=GROUP)]


def discover(
    extra: Iterable[str] = (), env: str | None = None, settings: Settings | None = None
) -> Catalog:
    """The catalog of installed plugins, then DURABLE_AGENTS_PLUGINS (`env` or the settings'
    `plugins`), then `extra`."""
    if env is None:
        from durable_agents.settings import current

        env = (settings or current()).plugins
    named = refs(env)
    seen: list[str] = []
    for ref in [*installed(), *named, *extra]:
        if ref not in seen:
            seen.append(ref)
    return Catalog.build(load(ref) for ref in seen)
