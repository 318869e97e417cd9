"""Every error durable-agents raises, under one root, and the failure taxonomy.

    try:
        ...
    except ConfigurationError as exc:   # a setting, file or plugin to fix; the message says how
        ...
    except DurableAgentsError as exc:   # anything else of ours (a request refused, no server)
        ...

`FailureType` names the failures activities report to the agent loop, which picks a strategy by
type (wait, fall back, compact, tell the model, park the run). A tool or a scripted model acts
out a failure by raising it as the type of an `ApplicationError`:

    raise ApplicationError("the provider is busy", type=FailureType.RATE_LIMITED)

A tool says "the system said no" with `ToolRejected` and "try again" with `ToolTransient`.

This module imports nothing heavy: the CLI recognises these by type before anything else loads.
"""

from __future__ import annotations

from collections.abc import Iterable

from durable_agents._vocab.failures import FailureType

__all__ = [
    "CatalogError",
    "CodecConfigError",
    "ConfigurationError",
    "DirectoryError",
    "DurableAgentsError",
    "FailureType",
    "InvalidRoute",
    "MCPConfigError",
    "ModelTableError",
    "RequestError",
    "ServerUnreachable",
    "SettingsError",
    "SetupError",
    "TelemetryConfigError",
    "ToolDefinitionError",
    "ToolRejected",
    "ToolTransient",
    "Unconfirmed",
    "UnknownAgent",
    "UnknownPerson",
    "UnknownPrice",
]


class DurableAgentsError(Exception):
    """The root of every error durable-agents raises; the message says what to do."""


# --- configuration: something an operator or a developer fixes before it can work ------------


class ConfigurationError(DurableAgentsError, ValueError):
    """A setting, file, plugin or definition that cannot work; the message names it and says
    what to change."""


class SettingsError(ConfigurationError):
    """A `DURABLE_AGENTS_*` variable is unusable; the message names it and says what fits."""


class CodecConfigError(ConfigurationError):
    """The payload encryption keys cannot be used (DURABLE_AGENTS_CODEC_KEYS[_FILE])."""


class TelemetryConfigError(ConfigurationError):
    """A telemetry setting that cannot work; the message says what to change."""


class CatalogError(ConfigurationError):
    """Agents that cannot be served together (a missing tool, a name twice, a bad plugin)."""


class MCPConfigError(ConfigurationError):
    """An MCP server's settings cannot work on this worker; the message says what to fix."""


class DirectoryError(ConfigurationError):
    """A directory that cannot be used: one line naming the file, the key and what to fix."""


class ModelTableError(ConfigurationError):
    """A model table that cannot be used: one line naming the file, the key and what to fix."""


class ToolDefinitionError(ConfigurationError, TypeError):
    """A tool that cannot be made from the function it decorates; the message says why."""


class UnknownPrice(ConfigurationError):
    """A model without a price, under a budget with a cost limit."""

    def __init__(self, models: Iterable[str]) -> None:
        self.models: tuple[str, ...] = tuple(sorted(set(models)))
        names = ", ".join(repr(m) for m in self.models)
        if len(self.models) == 1:
            text = f"no price for model {names}: add it to a model table (models.toml)"
        else:
            text = f"no price for models {names}: add them to a model table (models.toml)"
        super().__init__(f"{text} or remove the cost limit")


# --- requests: what someone asked for cannot be carried out -----------------------------------


class RequestError(DurableAgentsError):
    """A request about runs (start, decide, message, look up) that cannot be carried out; the
    message says why and what to do."""


class Unconfirmed(RequestError):
    """A decision or message was sent, but no worker confirmed it in time: it may still be
    applied once a worker takes the run up. The message says how to check."""


class UnknownAgent(RequestError, LookupError):
    """No agent of that name in the catalog."""


class UnknownPerson(RequestError, ValueError):
    """A name that is not a person of the directory (or not a name at all)."""


class InvalidRoute(RequestError, ValueError):
    """A model route that cannot be parsed, or that goes where the worker may not send."""


# --- the machinery around: a server to reach, a local stack to start --------------------------


class ServerUnreachable(DurableAgentsError, ConnectionError):
    """The Temporal server did not answer at the configured address."""


class SetupError(DurableAgentsError, RuntimeError):
    """Something the local stack needs is missing or would not start."""


# --- raised by users' tools -------------------------------------------------------------------


class ToolRejected(DurableAgentsError):
    """Raise from a tool when the system it calls said no (a wrong amount, a closed account):
    the call is not retried, nothing counts as done, and the model reads the message as the
    tool's result (`{"error": "..."}`) to correct itself. Say what was wrong."""


class ToolTransient(DurableAgentsError):
    """Raise from a tool when the system it calls failed in a way a retry may cure (busy, a
    dropped connection): the call is retried by the tool's retry policy, with the same
    idempotency key, until it succeeds or the policy gives up."""
