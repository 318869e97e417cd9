"""The failure taxonomy: activities classify with these types, workflows choose a strategy by them.

Kept free of I/O so both sides import the same names.
"""

from __future__ import annotations

from typing import Final

RATE_LIMITED: Final = "RateLimited"
PROVIDER_UNAVAILABLE: Final = "ProviderUnavailable"
TIMEOUT: Final = "Timeout"
CONTEXT_WINDOW_EXCEEDED: Final = "ContextWindowExceeded"
MALFORMED_MODEL_OUTPUT: Final = "MalformedModelOutput"
AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
INVALID_REQUEST: Final = "InvalidRequest"
TOOL_INPUT_INVALID: Final = "ToolInputInvalid"
TOOL_REJECTED: Final = "ToolRejected"
TOOL_TRANSIENT: Final = "ToolTransient"
TOOL_CONTRACT_VIOLATION: Final = "ToolContractViolation"
UNKNOWN_TOOL: Final = "UnknownTool"
# The run was not granted a scope the tool requires: refused before it runs, the model is told.
PERMISSION_DENIED: Final = "PermissionDenied"
# The message store lacks part of a conversation sent by reference: the workflow sends it again.
CONVERSATION_MISSING: Final = "ConversationMissing"
# A payload would pass the server's size limit: the step fails instead of the workflow task.
PAYLOAD_TOO_LARGE: Final = "PayloadTooLarge"

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
