"""The embedded default world: a scripted OpenAI/Anthropic-compatible model server and simulated
company systems on SQLite, served over HTTP on loopback so real clients are exercised end to end
(`sim.app`, `sim.runner`), and the agents that live in it (`sim.agents`).

Its own distribution, `durable-agents-sim` (sim/pyproject.toml), a plugin like any user's: it
imports durable_agents' public names only (a lint contract checks it), reads its own settings
(`sim.settings`), and reaches workers and agentctl through entry points: its agents
(`durable_agents.agents`) and the commands `agentctl sim` and `agentctl demo`
(`durable_agents.commands`, `sim.cli`).
"""
