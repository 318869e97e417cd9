"""`agentctl deploy`: roll a new version of the workers out while runs are in flight.

Workers that set DURABLE_AGENTS_DEPLOYMENT join that Worker Deployment as version
`<deployment>:<build id>`. A run stays on the version that started it and, when the deployment
has a new current (or ramping) version for it, moves onto it at its next turn boundary (agents
with `upgrade="pinned"` finish where they started). These commands are Temporal's own API:

    agentctl deploy status                 versions, current/ramping, runs on each, drained or not
    agentctl deploy promote BUILD          make BUILD current (new runs and upgrades go there)
    agentctl deploy ramp BUILD PERCENT     send PERCENT of new runs and upgrades to BUILD
"""

from __future__ import annotations

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
            }
        )
    return {
        "deployment": deployment,
        "current": routing.current_deployment_version.build_id or None,
        "ramping": routing.ramping_deployment_version.build_id or None,
        "ramping_percent": routing.ramping_version_percentage or 0,
        "versions": sorted(versions, key=lambda v: v["created"]),
    }


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
    address: str | None, deployment: str, build: str, percent: float | None
) -> dict[str, Any]:
    """Make `build` current (percent None) or ramping at `percent`, then the new status."""
    from temporalio.api.workflowservice.v1 import (
        SetWorkerDeploymentCurrentVersionRequest,
        SetWorkerDeploymentRampingVersionRequest,
    )
    from temporalio.service import RPCError

    from durable_agents import _ops as ops
    from durable_agents.errors import RequestError

    _checked("build id", build)
    client = await ops.connect(address)
    known = {v["build_id"] for v in (await status(address, deployment))["versions"]}
    if build not in known:
        raise RequestError(
            f"no version {build!r} in deployment {deployment!r} (versions: "
            f"{', '.join(sorted(known)) or 'none'}): start its workers first"
        )
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
    return await status(address, deployment)


def _text(row: dict[str, Any]) -> str:
    ramp = f", {row['ramping']} ramping at {row['ramping_percent']:g}%" if row["ramping"] else ""
    lines = [f"deployment {row['deployment']}: current {row['current'] or 'none'}{ramp}"]
    for v in row["versions"]:
        mark = "*" if v["build_id"] == row["current"] else " "
        runs = "?" if v["open_runs"] < 0 else v["open_runs"]
        lines.append(
            f" {mark} {v['build_id']}  {v['status']:<9} open runs: {runs:<5} "
            f"drainage: {v['drainage']}  since {v['created']}"
        )
    from durable_agents._vocab.text import printable

    return "\n".join(printable(line) for line in lines)


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
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Make BUILD current: new runs start there and running ones move at their next turn."""
    name = _deployment(deployment)
    _show(call(lambda: route(address, name, build, None)), as_json)


@deploy_app.command("ramp")
def deploy_ramp(
    build: Annotated[str, typer.Argument(metavar="BUILD", help="The build id to ramp.")],
    percent: Annotated[float, typer.Argument(metavar="PERCENT", min=0, max=100)],
    deployment: Deployment = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Send PERCENT of new runs (and of upgrades) to BUILD; the rest stay on the current."""
    name = _deployment(deployment)
    _show(call(lambda: route(address, name, build, percent)), as_json)
