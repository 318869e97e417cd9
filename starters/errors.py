"""What the CLI tells an operator when a request cannot be carried out (no heavy imports here:
every command loads this module, and `agentctl --help` must start fast)."""

from __future__ import annotations

# Exit codes of agentctl (README, "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1  # refused or failed; also, quietly, when the reader of our output went away
EXIT_UNCONFIRMED = 3  # sent, but not confirmed in time: it may still be applied


class OpError(Exception):
    """A request an operator made that cannot be carried out; the message says what to do."""


class Unconfirmed(OpError):
    """A decision or message was sent, but no worker confirmed it in time: it may still be
    applied once a worker takes the run up. The message says how to check."""
