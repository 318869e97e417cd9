"""`agentctl deploy`: roll a new version of the workers out while runs are in flight.

Workers that set DURABLE_AGENTS_DEPLOYMENT join that Worker Deployment as version
`<deployment>:<build id>`. A run stays on the version that started it and, when the deployment
has a new current (or ramping) version for it, moves onto it at its next turn boundary (agents
with `upgrade="pinned"` finish where they started). These commands are Temporal's own API:

    agentctl worker --check                (with the new build's code) prove it can take over
    agentctl deploy status                 versions, current/ramping, runs on each, drained or not
    agentctl deploy promote BUILD          make BUILD current (new runs and upgrades go there),
                                           then move the runs waiting on other versions onto it
    agentctl deploy ramp BUILD PERCENT     send PERCENT of new runs and upgrades to BUILD

`ramp` and `promote` refuse a version whose check (workers/check.py) has not passed within a
day, unless `--force`, which is recorded on the version (`deploy status` shows it).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from durable_agents.starters.common import Address, AsJson, call, emit, fail

if TYPE_CHECKING:
    from temporalio.client import Client

deploy_app = typer.Typer(help="Roll out new workers while runs are in flight (versioning).")

Deployment = Annotated[
    str | None,
    typer.Option(
        "--deployment",
        help="The Worker Deployment (default: DURABLE_AGENTS_DEPLOYMENT).",
        show_default=False,
    ),
]


Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Give the version traffic although its check has not passed (recorded on it).",
    ),
]


def _deployment(name: str | None) -> str:
    from durable_agents.settings import current

    found = name or current().deployment
    if not found:
        fail("name the deployment: --deployment NAME, or set DURABLE_AGENTS_DEPLOYMENT")
    return found


def _name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return f"unknown ({value})"  # a newer server's value


# Deployment names and build ids as Temporal takes them: safe inside a visibility query.
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


def _checked(what: str, value: str) -> str:
    from durable_agents.errors import RequestError

    if not NAME.fullmatch(value):
        raise RequestError(f"{what} {value!r}: use letters, digits, '.', '-' and '_'")
    return value


async def status(address: str | None, deployment: str) -> dict[str, Any]:
    """The deployment's versions: which is current or ramping, runs open on each, drainage."""
    from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
    from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentRequest
    from temporalio.service import RPCError, RPCStatusCode

    from durable_agents import _ops as ops
    from durable_agents.errors import RequestError

    _checked("deployment", deployment)
    client = await ops.connect(address)
    try:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise RequestError(
                f"no Worker Deployment {deployment!r}: start workers with "
                f"DURABLE_AGENTS_DEPLOYMENT={deployment}"
            ) from None
        raise
    info = resp.worker_deployment_info
    routing = info.routing_config
    versions = []
    for summary in info.version_summaries:
        build = summary.deployment_version.build_id
        versions.append(
            {
                "build_id": build,
                "status": _name(
                    WorkerDeploymentVersionStatus,
                    summary.status,
                    "WORKER_DEPLOYMENT_VERSION_STATUS_",
                ),
                "drainage": _name(
                    VersionDrainageStatus, summary.drainage_status, "VERSION_DRAINAGE_STATUS_"
                ),
                "open_runs": await _open_runs(client, deployment, build),
                "created": summary.create_time.ToDatetime().isoformat(timespec="seconds") + "Z",
                **await _checked_state(client, deployment, build),
            }
        )
    current = routing.current_deployment_version.build_id
    for v in versions:
        if v["build_id"] != current and v["open_runs"] > 0:
            v["left"] = await _left(client, deployment, v["build_id"])
    return {
        "deployment": deployment,
        "current": routing.current_deployment_version.build_id or None,
        "ramping": routing.ramping_deployment_version.build_id or None,
        "ramping_percent": routing.ramping_version_percentage or 0,
        "versions": sorted(versions, key=lambda v: v["created"]),
    }


async def _checked_state(client: Client, deployment: str, build: str) -> dict[str, Any]:
    """The version's check as `deploy status` shows it: passed, failed, none; forced by whom."""
    from temporalio.service import RPCError

    from durable_agents.workers.check import CHECK_KEY, FORCED_KEY, metadata, verdict

    try:
        found = await metadata(client, deployment, build)
    except RPCError:
        return {"check": "unknown", "check_problem": None, "forced": None}
    check = found.get(CHECK_KEY)
    state = "none" if not isinstance(check, dict) else "passed" if check.get("passed") else "failed"
    problem = verdict(found)
    return {"check": state, "check_problem": problem, "forced": found.get(FORCED_KEY)}


async def _left(client: Client, deployment: str, build: str) -> dict[str, Any]:
    """What keeps an old version open: runs mid-turn, waiting, needing attention; and when
    the last waiting one gives up (from the status of at most 50 of them)."""
    from durable_agents._vocab.names import WORKFLOW
    from durable_agents._vocab.schemas import AgentStatus

    base = (
        f"WorkflowType = '{WORKFLOW}' AND ExecutionStatus = 'Running' AND "
        f"TemporalWorkerDeploymentVersion = '{deployment}:{build}'"
    )

    async def count(extra: str) -> int:
        return (await client.count_workflows(f"{base} AND {extra}")).count

    waiting_q = "AgentStatus IN ('waiting_event', 'waiting_approval')"
    left: dict[str, Any] = {
        "running": await count("AgentStatus = 'running'"),
        "waiting": await count(waiting_q),
        "needs_attention": await count("AgentStatus = 'needs_attention'"),
    }
    untils = []
    async for w in client.list_workflows(f"{base} AND {waiting_q}", limit=50):
        try:
            now = await asyncio.wait_for(
                client.get_workflow_handle(w.id).query("status", result_type=AgentStatus), 5
            )
        except Exception:
            continue  # no worker answers: left out of the estimate
        if now.waiting_until is not None:
            untils.append(now.waiting_until)
    left["drains_by"] = f"{max(untils):%Y-%m-%d %H:%M} UTC" if untils else None
    return left


async def _open_runs(client: Client, deployment: str, build: str) -> int:
    """Open agent runs pinned to the version (by Temporal's own search attribute)."""
    from temporalio.service import RPCError

    from durable_agents._vocab.names import WORKFLOW

    if not (NAME.fullmatch(deployment) and NAME.fullmatch(build)):
        return -1  # a name no query may quote
    query = (
        f"WorkflowType = '{WORKFLOW}' AND ExecutionStatus = 'Running' AND "
        f"TemporalWorkerDeploymentVersion = '{deployment}:{build}'"
    )
    try:
        return (await client.count_workflows(query)).count
    except RPCError:
        return -1  # the server's visibility store cannot say


async def route(
    address: str | None,
    deployment: str,
    build: str,
    percent: float | None,
    force: bool = False,
) -> dict[str, Any]:
    """Make `build` current (percent None) or ramping at `percent`, then the new status; a
    promote then moves the runs waiting on other versions. A version whose check has not
    passed is refused, unless `force` (recorded on the version)."""
    from temporalio.api.workflowservice.v1 import (
        SetWorkerDeploymentCurrentVersionRequest,
        SetWorkerDeploymentRampingVersionRequest,
    )
    from temporalio.service import RPCError

    from durable_agents import _ops as ops
    from durable_agents.errors import RequestError

    _checked("build id", build)
    client = await ops.connect(address)
    before = await status(address, deployment)
    known = {v["build_id"]: v for v in before["versions"]}
    if build not in known:
        raise RequestError(
            f"no version {build!r} in deployment {deployment!r} (versions: "
            f"{', '.join(sorted(known)) or 'none'}): start its workers first"
        )
    already = build == before["current"] and percent is None
    problem = known[build]["check_problem"]
    if problem and not already:
        action = "promote" if percent is None else f"ramp {percent:g}%"
        if not force:
            raise RequestError(
                f"{action} of {build} refused: {problem}; or --force, which is recorded"
            )
        await _record_force(client, deployment, build, action, problem)
    try:
        if percent is None:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build,
                    identity="agentctl",
                )
            )
        else:
            await client.workflow_service.set_worker_deployment_ramping_version(
                SetWorkerDeploymentRampingVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build,
                    percentage=percent,
                    identity="agentctl",
                )
            )
    except RPCError as exc:
        raise RequestError(f"the server refused: {exc.message}") from None
    moved = await move_waiting(client, deployment, build) if percent is None else None
    after = await status(address, deployment)
    if moved is not None:
        after["moved"] = moved
    return after


async def _record_force(
    client: Client, deployment: str, build: str, action: str, problem: str
) -> None:
    import getpass
    import socket
    from datetime import UTC, datetime

    from durable_agents.workers.check import FORCED_KEY, store

    try:
        from durable_agents.starters.signin import session

        who = str(session(refresh=False).get("subject", "")) or getpass.getuser()
    except Exception:
        who = getpass.getuser()
    record = {
        "by": f"{who}@{socket.gethostname()}",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "despite": problem,
    }
    await store(client, deployment, build, FORCED_KEY, record)


# Agent statuses at a safe point: a `move` signal wakes the run and it moves at once.
WAITING = ("waiting_event", "waiting_approval", "needs_attention")


async def _propagated(client: Client, deployment: str, timeout: float = 30) -> None:
    """Wait until the new routing has reached the task queues: a run woken before sees no new
    version and stays."""
    import time

    from temporalio.api.enums.v1 import RoutingConfigUpdateState
    from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentRequest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
        state = resp.worker_deployment_info.routing_config_update_state
        if state != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS:
            return
        await asyncio.sleep(0.2)


async def move_waiting(client: Client, deployment: str, build: str) -> int:
    """Ask every run waiting on another version of the deployment to move onto `build` now
    (the `move` signal: the run continues as new there, still waiting, if its agent upgrades;
    a pinned agent's run stays). Runs mid-turn move at their next turn boundary anyway."""
    from temporalio.service import RPCError

    from durable_agents._vocab.names import MOVE_SIGNAL, WORKFLOW
    from durable_agents._vocab.schemas import MoveRequest

    await _propagated(client, deployment)
    statuses = ", ".join(f"'{s}'" for s in WAITING)
    query = (
        f"WorkflowType = '{WORKFLOW}' AND ExecutionStatus = 'Running' AND "
        f"TemporalWorkerDeployment = '{deployment}' AND "
        f"TemporalWorkerDeploymentVersion != '{deployment}:{build}' AND "
        f"AgentStatus IN ({statuses})"
    )
    ids = [w.id async for w in client.list_workflows(query)]
    request = MoveRequest(reason=f"{deployment}:{build} promoted")
    gate = asyncio.Semaphore(20)

    async def one(run_id: str) -> bool:
        async with gate:
            try:
                await client.get_workflow_handle(run_id).signal(MOVE_SIGNAL, request)
                return True
            except RPCError:
                return False  # it ended meanwhile

    return sum(await asyncio.gather(*(one(i) for i in ids)))


def _text(row: dict[str, Any]) -> str:
    ramp = f", {row['ramping']} ramping at {row['ramping_percent']:g}%" if row["ramping"] else ""
    lines = [f"deployment {row['deployment']}: current {row['current'] or 'none'}{ramp}"]
    for v in row["versions"]:
        mark = "*" if v["build_id"] == row["current"] else " "
        runs = "?" if v["open_runs"] < 0 else v["open_runs"]
        lines.append(
            f" {mark} {v['build_id']}  {v['status']:<9} open runs: {runs:<5} "
            f"drainage: {v['drainage']}  check: {v.get('check', '?')}  since {v['created']}"
        )
        if v.get("forced"):
            f = v["forced"]
            lines.append(
                f"     forced: {f['action']} by {f['by']} at {f['at']} despite: {f['despite']}"
            )
        if v.get("left"):
            lines.append(f"     left: {_left_text(v['left'])}")
    if row.get("moved") is not None:
        lines.append(f"asked {row['moved']} waiting runs on other versions to move now")
    from durable_agents._vocab.text import printable

    return "\n".join(printable(line) for line in lines)


def _left_text(left: dict[str, Any]) -> str:
    parts = []
    if left["running"]:
        parts.append(f"{left['running']} mid-turn (they move at their next turn)")
    if left["waiting"]:
        until = left.get("drains_by")
        by = f"; the last of them gives up by {until}" if until else ""
        parts.append(
            f"{left['waiting']} waiting (pinned agents, or not yet moved: `agentctl deploy "
            f"promote` asks them){by}"
        )
    if left["needs_attention"]:
        parts.append(f"{left['needs_attention']} needing attention (until an operator acts)")
    return ", ".join(parts) or "none"


def _show(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        emit(row, _text(row), False)


@deploy_app.command("status")
def deploy_status(
    deployment: Deployment = None, address: Address = None, as_json: AsJson = False
) -> None:
    """The deployment's versions: current or ramping, open runs on each, drained or not."""
    name = _deployment(deployment)
    _show(call(lambda: status(address, name)), as_json)


@deploy_app.command("promote")
def deploy_promote(
    build: Annotated[str, typer.Argument(metavar="BUILD", help="The build id to make current.")],
    deployment: Deployment = None,
    force: Force = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Make BUILD current: new runs start there, runs mid-turn move at their next turn, and the
    runs waiting on other versions are asked to move now (still waiting, deadlines, approvals
    and escalations as they were). Refused unless BUILD's check passed (`agentctl worker
    --check` with its code) or --force."""
    name = _deployment(deployment)
    _show(call(lambda: route(address, name, build, None, force)), as_json)


@deploy_app.command("ramp")
def deploy_ramp(
    build: Annotated[str, typer.Argument(metavar="BUILD", help="The build id to ramp.")],
    percent: Annotated[float, typer.Argument(metavar="PERCENT", min=0, max=100)],
    deployment: Deployment = None,
    force: Force = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Send PERCENT of new runs (and of upgrades) to BUILD; the rest stay on the current."""
    name = _deployment(deployment)
    _show(call(lambda: route(address, name, build, percent, force)), as_json)
