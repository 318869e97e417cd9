"""The sim world's agents and their tools: onboarding, refund, helpdesk, research, reader, bench.

They are written the way any user's agents are, and reach workers and the CLI the way any
user's do: through the `durable_agents.agents` entry point `sim` (sim/pyproject.toml), which names
`AGENTS` below.
"""

from __future__ import annotations

from pathlib import Path

from durable_agents import AgentSet, Directory, ModelTable
from sim.agents.bench import BENCH
from sim.agents.helpdesk import HELPDESK
from sim.agents.onboarding import ONBOARDING
from sim.agents.reader import READER, SKIMMER
from sim.agents.refund import REFUND
from sim.agents.research import FACT_FINDER, RESEARCH

AGENTS = AgentSet(
    agents=(ONBOARDING, REFUND, HELPDESK, RESEARCH, FACT_FINDER, READER, SKIMMER, BENCH),
    # Probes for benchmarks and tests, not agents anyone runs for their work.
    hidden=("bench", "skimmer"),
    source="sim.agents",
    # The sim world's people and approver groups, and its models' prices and windows.
    directory=Directory.load(Path(__file__).parent / "directory.toml"),
    models=ModelTable.load(Path(__file__).parent / "models.toml"),
)
