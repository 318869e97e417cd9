"""The CLI's exit codes (what it raises is in `durable_agents.errors`)."""

from __future__ import annotations

# Exit codes of agentctl (README, "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1  # refused or failed; also, quietly, when the reader of our output went away
EXIT_UNCONFIRMED = 3  # sent, but not confirmed in time: it may still be applied
