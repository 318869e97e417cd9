"""MCP tools as the loop sees them: contracts and schemas from the list the run recorded
(`workflows/mcp.py`), and their arguments checked against the listed input schema (JSON Schema;
bad ones go back to the model, as for native tools). Pure functions of the run's state."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from jsonschema import Draft202012Validator
    from pydantic import BaseModel, ConfigDict
    from referencing import Registry

    from durable_agents._spec import AgentSpec, ToolContract
    from durable_agents._vocab.carried import CarriedState
    from durable_agents._vocab.schemas import MCPTool, ToolSchema


class MCPArguments(BaseModel):
    """An MCP tool's arguments and answer: any JSON object (the schema is checked apart)."""

    model_config = ConfigDict(extra="allow")


def tool(state: CarriedState, name: str) -> MCPTool | None:
    return next((t for t in state.mcp.tools if t.exposed == name), None)


def contract(state: CarriedState, name: str) -> ToolContract | None:
    """The contract of the MCP tool the model calls `name`, from the recorded list."""
    found = tool(state, name)
    if found is None:
        return None
    return ToolContract(
        name=found.exposed,
        description=found.description,
        input_model=MCPArguments,
        output_model=MCPArguments,
        side_effect=found.side_effect,
        timeout=timedelta(seconds=found.timeout_seconds),
        max_attempts=found.max_attempts,
        required_scopes=tuple(found.scopes),
        parameters=json.dumps(found.input_schema, sort_keys=True),
        mcp_server=found.server,
    )


def schemas(state: CarriedState, spec: AgentSpec) -> list[ToolSchema]:
    """What the model is offered: the agent's own tools, then the MCP tools listed."""
    native = [t.schema() for t in spec.tools]
    return native + [
        ToolSchema(name=t.exposed, description=t.description, parameters=t.input_schema)
        for t in state.mcp.tools
    ]


def problems(state: CarriedState, name: str, arguments: dict[str, Any]) -> str | None:
    """What is wrong with the arguments of an MCP tool call, by the server's schema."""
    found = tool(state, name)
    if found is None or not found.input_schema:
        return None
    try:
        # An empty registry: a `$ref` to anything outside the schema is never fetched (no I/O
        # in workflow code), it fails, and the server judges the arguments instead.
        validator = Draft202012Validator(found.input_schema, registry=Registry())
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except Exception:  # noqa: BLE001 - a schema we cannot use must never fail the task
        return None  # the server's schema is broken: let the server judge
    if not errors:
        return None
    return "; ".join(
        f"{'/'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:5]
    )
