"""A build proves it can take over before it gets traffic (`agentctl worker --check`).

Run by the new build itself (its code, its agents, its workflow class), with its workers
already started (a version that is neither current nor ramping gets no runs): it replays the
latest history of every run open on its task queue, and of a sample of closed ones, against
its own workflow code, and reads each open run's state (the `carried_state` query, answered by
the version the run is on) with its own models, as it would read it when the run moves onto it.
The result goes into the version's metadata on the server (`durable_agents_check`), where
`agentctl deploy ramp` and `promote` look for it: they refuse a version whose check has not
passed, unless `--force` (which is recorded there too, `durable_agents_forced`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError
from temporalio.worker import Replayer

from durable_agents._catalog import Catalog
from durable_agents._vocab.names import CARRIED_QUERY, WORKFLOW
from durable_agents.settings import Settings
from durable_agents.workers.plugin import DurableAgentsPlugin
from durable_agents.workflows.agent import AgentWorkflow

log = logging.getLogger("durable_agents.check")

CHECK_KEY = "durable_agents_check"
FORCED_KEY = "durable_agents_forced"
# A check says what was open when it ran: after this long, runs it never saw may be open.
FRESH_FOR = timedelta(hours=24)
CLOSED_SAMPLE = 20
OPEN_LIMIT = 2_000


@dataclass
class Problem:
    run: str
    what: str  # replay | state
    why: str


@dataclass
class CheckReport:
    deployment: str
    build_id: str
    task_queue: str
    checked_at: str
    open_runs: int = 0
    closed_runs: int = 0
    states_read: int = 0
    states_unread: list[str] = field(default_factory=list)  # a version with no such query
    # Runs written by versions newer than this one (a rollback): not replayed, as this build
    # never replays them: they move onto it by continue-as-new; their state is read.
    newer: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def text(self) -> str:
        head = (
            f"check of {self.deployment + ':' if self.deployment else 'build '}{self.build_id}: "
            f"{'passed' if self.passed else 'FAILED'}: replayed {self.open_runs} open and "
            f"{self.closed_runs} closed runs of task queue {self.task_queue!r}, read "
            f"{self.states_read} open runs' state with this build's models"
        )
        lines = [head]
        if self.newer:
            written = ", ".join(f"{n} by {b}" for b, n in sorted(self.newer.items()))
            lines.append(
                f"  not replayed, written by newer versions ({written}): they move onto this "
                "one by continue-as-new, never replayed by it; their state was read"
            )
        if self.states_unread:
            lines.append(
                f"  not read (their version has no {CARRIED_QUERY} query): "
                + ", ".join(self.states_unread[:10])
            )
        for p in self.problems[:20]:
            lines.append(f"  {p.run}: {p.what}: {p.why[:300]}")
        if len(self.problems) > 20:
            lines.append(f"  … and {len(self.problems) - 20} more")
        return "\n".join(lines)


async def check_build(
    client: Client,
    catalog: Catalog,
    settings: Settings,
    build_id: str,
    workflow: type[AgentWorkflow] = AgentWorkflow,
    closed_sample: int = CLOSED_SAMPLE,
) -> CheckReport:
    """Replay and read what this build would take over; the report, also stored on the
    server as the version's `durable_agents_check` when the worker is in a deployment."""
    deployment = settings.deployment or ""
    queue = settings.task_queue
    report = CheckReport(deployment, build_id, queue, datetime.now(UTC).isoformat())
    replayer = Replayer(
        workflows=[],
        data_converter=client.data_converter,
        plugins=[
            DurableAgentsPlugin(catalog, data_converter=False, workflow=workflow, settings=settings)
        ],  # fmt: skip
    )
    base = f"WorkflowType = '{WORKFLOW}' AND TaskQueue = '{queue}'"
    newer = await _newer_versions(client, deployment, build_id) if deployment else set()
    open_runs = [
        w
        async for w in client.list_workflows(
            f"{base} AND ExecutionStatus = 'Running'", limit=OPEN_LIMIT
        )
    ]
    closed_runs = [
        w
        async for w in client.list_workflows(
            f"{base} AND ExecutionStatus != 'Running'", limit=closed_sample
        )
    ]
    for w in [*open_runs, *closed_runs]:
        written_by = _build_of(w)
        if written_by in newer:
            report.newer[written_by] = report.newer.get(written_by, 0) + 1
        else:
            await _replay(client, replayer, w.id, w.run_id, report)
    for w in open_runs:
        await _read_state(client, w.id, report)
    report.open_runs, report.closed_runs = len(open_runs), len(closed_runs)
    if deployment:
        await store(client, deployment, build_id, CHECK_KEY, report.as_json())
    return report


def _build_of(run: Any) -> str:
    """The build of the version a run is pinned to ("" if none)."""
    from temporalio.common import SearchAttributeKey

    key = SearchAttributeKey.for_keyword("TemporalWorkerDeploymentVersion")
    version = run.typed_search_attributes.get(key) or ""
    return str(version).split(":", 1)[-1] if version else ""


async def _newer_versions(client: Client, deployment: str, build: str) -> set[str]:
    """The deployment's versions created after this build's (none if it is not there yet)."""
    from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentRequest

    try:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError:
        return set()
    created = {
        s.deployment_version.build_id: s.create_time.ToDatetime()
        for s in resp.worker_deployment_info.version_summaries
    }
    mine = created.get(build)
    if mine is None:
        return set()
    return {b for b, at in created.items() if at > mine}


async def _replay(
    client: Client, replayer: Replayer, run_id: str, execution: str, report: CheckReport
) -> None:
    """Replay one run of the chain `run_id` (its execution: not the chain's latest run)."""
    try:
        handle = client.get_workflow_handle(run_id, run_id=execution)
        history: WorkflowHistory = await handle.fetch_history()
    except RPCError as exc:
        report.problems.append(Problem(run_id, "replay", f"history unreadable: {exc.message}"))
        return
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        why = f"{type(result.replay_failure).__name__}: {result.replay_failure}"
        report.problems.append(Problem(run_id, "replay", why))


async def _read_state(client: Client, run_id: str, report: CheckReport) -> None:
    from temporalio.client import WorkflowQueryFailedError

    from durable_agents._vocab.carried import CarriedState

    handle = client.get_workflow_handle(run_id)
    try:
        await asyncio.wait_for(handle.query(CARRIED_QUERY, result_type=CarriedState), 15)
    except WorkflowQueryFailedError as exc:
        if "unknown" in str(exc).lower() or CARRIED_QUERY in str(exc):
            report.states_unread.append(run_id)
            return
        report.problems.append(Problem(run_id, "state", str(exc)))
    except (RPCError, TimeoutError) as exc:
        report.problems.append(
            Problem(run_id, "state", f"no worker of its version answered: {exc}")
        )
    except Exception as exc:  # what this build's models cannot read
        report.problems.append(Problem(run_id, "state", f"{type(exc).__name__}: {exc}"))
    else:
        report.states_read += 1


async def store(client: Client, deployment: str, build: str, key: str, value: Any) -> None:
    """Write one entry of the version's metadata on the server."""
    from temporalio.api.deployment.v1 import WorkerDeploymentVersion
    from temporalio.api.workflowservice.v1 import UpdateWorkerDeploymentVersionMetadataRequest
    from temporalio.converter import default

    payload = default().payload_converter.to_payload(json.loads(json.dumps(value)))
    await client.workflow_service.update_worker_deployment_version_metadata(
        UpdateWorkerDeploymentVersionMetadataRequest(
            namespace=client.namespace,
            deployment_version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build),
            upsert_entries={key: payload},
            identity="agentctl",
        )
    )


async def metadata(client: Client, deployment: str, build: str) -> dict[str, Any]:
    """The version's metadata entries, as JSON values."""
    from temporalio.api.deployment.v1 import WorkerDeploymentVersion
    from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentVersionRequest
    from temporalio.converter import default

    resp = await client.workflow_service.describe_worker_deployment_version(
        DescribeWorkerDeploymentVersionRequest(
            namespace=client.namespace,
            deployment_version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build),
        )
    )
    entries = resp.worker_deployment_version_info.metadata.entries
    return {k: default().payload_converter.from_payload(v) for k, v in entries.items()}


def verdict(found: dict[str, Any], now: datetime | None = None) -> str | None:
    """Why a version may not get traffic (None: its check passed, recently)."""
    check = found.get(CHECK_KEY)
    if not isinstance(check, dict):
        return "it has not been checked: run `agentctl worker --check` with its code first"
    if not check.get("passed"):
        problems = check.get("problems") or []
        first = problems[0] if problems else {}
        return (
            f"its check failed ({len(problems)} problem(s); first: {first.get('run')}: "
            f"{first.get('what')}: {str(first.get('why'))[:200]})"
        )
    at = datetime.fromisoformat(str(check.get("checked_at")))
    if (now or datetime.now(UTC)) - at > FRESH_FOR:
        return (
            f"its check is from {at:%Y-%m-%d %H:%M} UTC, older than {FRESH_FOR.days} day(s): "
            "run `agentctl worker --check` again"
        )
    return None
