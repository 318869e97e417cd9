"""The search attributes operators filter runs by (names are public: keep them stable)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

AGENT_NAME = SearchAttributeKey.for_keyword("AgentName")
AGENT_STATUS = SearchAttributeKey.for_keyword("AgentStatus")
PRINCIPAL = SearchAttributeKey.for_keyword("Principal")

ALL = (AGENT_NAME, AGENT_STATUS, PRINCIPAL)
