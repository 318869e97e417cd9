"""The agent workflow's public names: what clients, ops tools and the UI address a run by.

Kept apart, with no imports, so the CLI can address a run without loading the agent loop.
Names are the public interface: keep them stable.
"""

WORKFLOW = "AgentWorkflow"
STATUS_QUERY = "status"
TRANSCRIPT_QUERY = "transcript"
CONVERSATION_QUERY = "conversation"
EVENT_SIGNAL = "event"
APPROVE_SIGNAL = "approve"
REJECT_SIGNAL = "reject"
RESUME_SIGNAL = "resume"
RETRY_TURN_SIGNAL = "retry_turn"
ABORT_SIGNAL = "abort"
MOVE_SIGNAL = "move"
CARRIED_QUERY = "carried_state"
DECIDE_UPDATE = "decide"
MESSAGE_UPDATE = "message"
# Activities, by the names workers register them under.
RUN_TOOL = "run_tool"
CALL_LLM = "call_llm"
SUMMARIZE = "summarize"
RECOVER_CONVERSATION = "recover_conversation"
RECORD_AUDIT = "record_audit"
LIST_MCP_TOOLS = "list_mcp_tools"
CALL_MCP_TOOL = "call_mcp_tool"
VERIFY_PROOF = "verify_proof"
# The `type` of the error a message with no valid proof is refused with.
PROOF_REFUSED = "ProofRefused"
# The audience of people's proofs, unless the worker's settings name another.
PROOF_AUDIENCE = "durable-agents"
