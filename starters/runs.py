"""`agentctl run | status | transcript | signal | result | list`: start runs and look at them."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from durable_agents.starters.common import (
    Address,
    AsJson,
    Run,
    call,
    call_sync,
    emit,
    fail,
    note,
    parse_json,
    trace,
    ui_base,
    ui_link,
    warn_left_out,
)
from durable_agents.starters.connect import agents, with_client


def run(
    agent: str,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who the run acts for: you, signed in (`agentctl login`); if given, must name "
            "you, or a service principal of the directory (a run with no person behind it).",
        ),
    ] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="The agent's input as JSON.")] = "{}",
    task: Annotated[str, typer.Option(help="The task in words.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Granted scope (repeatable); default: the agent's standing grant."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Model route override (repeat: fallbacks).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--id", help="Workflow id to use.")] = None,
    task_queue: Annotated[
        str | None,
        typer.Option(
            help="Task queue the workers poll (default: DURABLE_AGENTS_TASK_QUEUE or "
            "durable-agents)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Watch it live (as `agentctl watch`) until it ends.")
    ] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of AGENT acting for you (signed in); prints its id and UI link.

    It is granted --scope (default: every scope its tools need); with --wait, prints its
    result. The run carries your proof: it acts for you, and the identity provider records that you
    granted AGENT those scopes (`agentctl grants`)."""
    from durable_agents import _ops as ops
    from durable_agents._vocab.schemas import AgentRun
    from durable_agents.settings import current
    from durable_agents.starters import render, signin

    # Everything the workflow would refuse is refused here, before anything starts.
    service = as_user is not None and call_sync(lambda: ops.service(as_user or ""))
    principal = call_sync(
        lambda: ops.person(as_user or "") if service else signin.signed_in_as(as_user)
    )
    data = call_sync(lambda: parse_json(input, "--input"))
    agent_run = AgentRun(
        agent=agent,
        input=data,
        task=task,
        principal=principal,
        scopes=scope or None,
        model_route=model or None,
    )
    call_sync(lambda: ops.validate_run(agent_run))
    wid = run_id or ops.new_run_id(agent)
    if not service:  # a person's run carries their proof: signed in first, asked here
        call_sync(signin.session)
    queue = task_queue or current().task_queue
    trace()

    async def go() -> None:
        client = await agents(address)
        client = dataclasses.replace(client, task_queue=queue)
        run = await client.start(agent_run, run_id=wid, scopes=scope or None)
        if as_json:
            note(f"started run {run.id}")
        else:
            typer.echo(f"started run {run.id}")
        temporal = client.temporal
        ui = ui_base(temporal.service_client.config.target_host)
        note(f"  {ui_link(run.id, temporal.namespace, ui)}")
        if await ops.pollers(temporal, queue) == 0:
            note(
                f"warning: no worker polls task queue {queue!r} yet; the run starts when "
                f"one does (`agentctl worker --task-queue {queue}`)"
            )
        if follow:
            await _follow(run, as_json)
        elif wait:
            outcome = await run.result()
            emit(outcome, render.result(outcome), as_json)
        elif as_json:
            emit({"run": run.id}, "", True)

    call(go)


def status(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """What a run is doing or waiting for, its turn and its token usage."""
    from durable_agents.starters import render

    s = call(lambda: with_client(address, lambda c: c.run(run_id).status()))
    emit(s, render.status(s), as_json)


def transcript(run_id: Run, address: Address = None, as_json: AsJson = False) -> None:
    """The run's record: task, model replies, tool calls and results, events, waits."""
    from durable_agents.starters import render

    entries = call(lambda: with_client(address, lambda c: c.run(run_id).transcript()))
    emit([e.model_dump(mode="json") for e in entries], render.transcript(entries), as_json)


def signal(
    run_id: Run,
    event: Annotated[str, typer.Argument(help="The event's name, e.g. clearance_granted.")],
    data: Annotated[str, typer.Option(help="Event payload as JSON.")] = "{}",
    address: Address = None,
) -> None:
    """Send EVENT (e.g. clearance_granted) to a run waiting for outside facts."""
    from durable_agents._vocab.text import printable

    payload = call_sync(lambda: parse_json(data, "--data"))
    if not event.strip():
        fail("EVENT must not be empty")
    call(lambda: with_client(address, lambda c: c.run(run_id).send_event(event, payload)))
    typer.echo(f"sent event {printable(event, 100)} to {printable(run_id, 200)}")


def result(
    run_id: Run,
    wait: Annotated[bool, typer.Option(help="Wait if the run is still going.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """The outcome and final answer of a finished run."""
    from durable_agents.starters import render

    r = call(lambda: with_client(address, lambda c: c.run(run_id).result(wait=wait)))
    emit(r, render.result(r), as_json)


def list_(
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only runs in this AgentStatus (running, waiting_approval, waiting_event, "
            "needs_attention, completed, rejected, aborted, timed_out, budget_exhausted, failed).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Agent runs, newest first, from a visibility query on the search attributes.

    A run that cannot be shown (its workflow task keeps failing) is left out with a warning."""
    from durable_agents import _ops as ops
    from durable_agents.starters import render

    call_sync(lambda: ops.list_query(agent, state))  # a wrong filter is refused before connecting
    problems: dict[str, str] = {}
    rows = call(
        lambda: with_client(
            address, lambda c: c.list(agent=agent, status=state, limit=limit, problems=problems)
        )
    )
    warn_left_out(problems)
    emit(rows, render.table(rows), as_json)


def watch(
    run_id: Run,
    from_offset: Annotated[
        int, typer.Option("--from", min=0, help="Start at this offset (resume: the last one + 1).")
    ] = 0,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Watch RUN live: each step on its own line as the run takes it (from its start, or
    --from), the commands that decide what it waits for; ends with the run.

    --json: one event per line, with its offset. Exit 0 when the run completed, 1 when it ended
    another way (its outcome is the last line)."""

    async def go() -> str:
        client = await agents(address)
        return await _follow(client.run(run_id), as_json, from_offset)

    status = call(go)
    raise typer.Exit(0 if status == "completed" else 1)


async def _follow(run: Any, as_json: bool, from_offset: int = 0) -> str:
    """Print the run's steps until it ends, the model's text as it is written; its last
    status."""
    import json

    from durable_agents.starters import render

    status, writing, attempt, written = "", False, 0, ""
    async for offset, event in run.watch(from_offset):
        status = event.status
        if as_json:
            typer.echo(json.dumps({"offset": offset, **event.model_dump(mode="json")}))
            continue
        if event.kind == "text":
            said = event.data.get("attempt", 1)
            if writing and said != attempt:
                typer.echo(f"\n  (attempt {said}: the text above was not the reply)")
                written = ""
            if not writing:
                typer.echo(f"{event.at:%H:%M:%S} t{event.turn:<2} 🤖 ", nl=False)
            attempt, writing = said, True
            typer.echo(render.controls_escaped(event.text), nl=False)
            written += event.text
            continue
        if writing:
            typer.echo()
            writing = False
        if event.kind == "assistant" and written and event.text.startswith(written[:200]):
            written = ""  # the reply in full: already written out as it came
            continue
        written = ""
        typer.echo(render.live(run.id, event))
    return status
