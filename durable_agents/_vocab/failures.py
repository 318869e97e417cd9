"""The failure taxonomy: activities classify with these types, workflows choose a strategy by them.

Kept free of I/O so both sides import the same names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class FailureType(StrEnum):
    """The failures activities report (as an `ApplicationError`'s type); each has a strategy in
    the agent loop. Members are strings: `FailureType.RATE_LIMITED == "RateLimited"`."""

    RATE_LIMITED = "RateLimited"
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    TIMEOUT = "Timeout"
    CONTEXT_WINDOW_EXCEEDED = "ContextWindowExceeded"
    MALFORMED_MODEL_OUTPUT = "MalformedModelOutput"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    INVALID_REQUEST = "InvalidRequest"
    TOOL_INPUT_INVALID = "ToolInputInvalid"
    TOOL_REJECTED = "ToolRejected"
    TOOL_TRANSIENT = "ToolTransient"
    TOOL_CONTRACT_VIOLATION = "ToolContractViolation"
    UNKNOWN_TOOL = "UnknownTool"
    PERMISSION_DENIED = "PermissionDenied"
    CONVERSATION_MISSING = "ConversationMissing"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"


RATE_LIMITED: Final = FailureType.RATE_LIMITED
PROVIDER_UNAVAILABLE: Final = FailureType.PROVIDER_UNAVAILABLE
TIMEOUT: Final = FailureType.TIMEOUT
CONTEXT_WINDOW_EXCEEDED: Final = FailureType.CONTEXT_WINDOW_EXCEEDED
MALFORMED_MODEL_OUTPUT: Final = FailureType.MALFORMED_MODEL_OUTPUT
AUTHENTICATION_FAILED: Final = FailureType.AUTHENTICATION_FAILED
INVALID_REQUEST: Final = FailureType.INVALID_REQUEST
TOOL_INPUT_INVALID: Final = FailureType.TOOL_INPUT_INVALID
TOOL_REJECTED: Final = FailureType.TOOL_REJECTED
TOOL_TRANSIENT: Final = FailureType.TOOL_TRANSIENT
TOOL_CONTRACT_VIOLATION: Final = FailureType.TOOL_CONTRACT_VIOLATION
UNKNOWN_TOOL: Final = FailureType.UNKNOWN_TOOL
# The run was not granted a scope the tool requires: refused before it runs, the model is told.
PERMISSION_DENIED: Final = FailureType.PERMISSION_DENIED
# The message store lacks part of a conversation sent by reference: the workflow sends it again.
CONVERSATION_MISSING: Final = FailureType.CONVERSATION_MISSING
# A payload would pass the server's size limit: the step fails instead of the workflow task.
PAYLOAD_TOO_LARGE: Final = FailureType.PAYLOAD_TOO_LARGE

# Retrying these cannot help: the workflow must act (compact, repair, park, tell the model).
LLM_NON_RETRYABLE: Final = [
    CONTEXT_WINDOW_EXCEEDED,
    MALFORMED_MODEL_OUTPUT,
    AUTHENTICATION_FAILED,
    INVALID_REQUEST,
    CONVERSATION_MISSING,
    PAYLOAD_TOO_LARGE,
]
# The provider cannot serve now: after the retry policy's attempts, try the next model in the route.
FALL_BACK: Final = frozenset({PROVIDER_UNAVAILABLE, TIMEOUT, RATE_LIMITED})
# Only an operator can fix these; the run parks as needs_attention with its context intact.
PARKING: Final = frozenset({AUTHENTICATION_FAILED, INVALID_REQUEST, TOOL_CONTRACT_VIOLATION})
# The model made the mistake; it gets the message and another try (bounded).
BACK_TO_MODEL: Final = frozenset(
    {TOOL_INPUT_INVALID, TOOL_REJECTED, UNKNOWN_TOOL, PAYLOAD_TOO_LARGE, PERMISSION_DENIED}
)
