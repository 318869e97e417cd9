"""durable-agents: AI agents whose reasoning loops are Temporal workflows.

The public API lives here; modules whose names start with `_` are private and may change.
"""
