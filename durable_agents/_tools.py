"""A tool is one object: `@tool(...)` on an async function makes its contract and its code one.

The function takes its validated input (a pydantic model, from its first parameter's
annotation) and a `ToolContext`, and returns its output (a pydantic model, from the return
annotation; a dict that fits it will do). Its docstring is what the model is told.

    @tool(side_effect="irreversible", scopes=("mail:send",))
    async def send_email(args: SendEmailInput, ctx: ToolContext) -> SendEmailOutput:
        \"\"\"Send an email. Write the subject and body yourself.\"\"\"
        ...
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, get_type_hints

from pydantic import BaseModel

from durable_agents._spec import Compensation, SideEffect, ToolContract
from durable_agents._vocab.schemas import Identity
from durable_agents.errors import ToolDefinitionError


@dataclass(frozen=True)
class ToolContext:
    """What a tool's code may know about its call."""

    tool: str
    """The tool's name."""
    idempotency_key: str
    """`<workflow_id>/<tool_call_id>`: pass it to every system the tool changes."""
    identity: Identity
    """Who acts: the agent and its run, the principal, the granted scopes."""
    deadline: datetime
    """When this attempt times out (the tool's `timeout` from its start)."""
    heartbeat: Callable[..., None]
    """Tell Temporal this attempt is alive (details are kept for the next attempt)."""
    token: str | None = field(default=None, repr=False)
    """For a tool with an `audience`: the short-lived token the identity provider issued for
    this call (subject the principal, actor this agent and run, the tool's scopes, the system
    as audience). Send it as a bearer token; it never enters the run's history."""

    def headers(self) -> dict[str, str]:
        """What a call to the system sends: the idempotency key, and the bearer token."""
        sent = {"Idempotency-Key": self.idempotency_key}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        return sent

    @property
    def timeout(self) -> float:
        """Seconds left until the deadline."""
        return max(0.0, (self.deadline - datetime.now(self.deadline.tzinfo)).total_seconds())


Implementation = Callable[[Any, ToolContext], Awaitable[Any]]


def _models(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], type[BaseModel]]:
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # noqa: BLE001  (a forward reference that does not resolve)
        raise ToolDefinitionError(f"tool {name}: its annotations do not resolve: {exc}") from None
    params = list(inspect.signature(fn).parameters)
    if len(params) != 2:
        raise ToolDefinitionError(
            f"tool {name}: takes (args: <InputModel>, ctx: ToolContext), not ({', '.join(params)})"
        )
    found = hints.get(params[0]), hints.get("return")
    for what, model in zip(("input (first parameter)", "output (return)"), found, strict=True):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ToolDefinitionError(
                f"tool {name}: annotate its {what} with a pydantic model, not {model!r}"
            )
    return found  # type: ignore[return-value]


def tool(
    *,
    side_effect: SideEffect,
    name: str | None = None,
    description: str | None = None,
    scopes: tuple[str, ...] = (),
    timeout: timedelta = timedelta(seconds=30),
    max_attempts: int = 5,
    compensation: Compensation | None = None,
    local: bool = False,
    task_queue: str | None = None,
    audience: str | None = None,
) -> Callable[[Implementation], ToolContract]:
    """Make an async function a tool: its contract (input and output models from the
    annotations, the docstring as description) and its implementation in one object.

    `side_effect`: `read_only`, `reversible` (name the undo in `compensation`) or
    `irreversible` (approval by default). `task_queue`: only workers serving that queue run it
    (a tool that needs a VPN, a GPU or a database). `audience`: the system the tool calls, as
    the identity provider names it; each call then gets a token for it (`ctx.token`), scoped to
    `scopes`."""

    def make(fn: Implementation) -> ToolContract:
        tool_name = name or fn.__name__
        if not inspect.iscoroutinefunction(fn):
            raise ToolDefinitionError(f"tool {tool_name}: must be an `async def` function")
        text = description or inspect.getdoc(fn)
        if not text:
            raise ToolDefinitionError(
                f"tool {tool_name}: give it a docstring (the model reads it) or a description"
            )
        if local and task_queue:
            raise ToolDefinitionError(
                f"tool {tool_name}: a local tool runs where its workflow does; drop task_queue"
            )
        input_model, output_model = _models(fn, tool_name)
        return ToolContract(
            name=tool_name,
            description=text,
            input_model=input_model,
            output_model=output_model,
            side_effect=side_effect,
            timeout=timeout,
            max_attempts=max_attempts,
            required_scopes=scopes,
            compensation=compensation,
            local=local,
            implementation=fn,
            task_queue=task_queue,
            audience=audience,
        )

    return make
