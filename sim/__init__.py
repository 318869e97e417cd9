"""The embedded default world: a scripted OpenAI/Anthropic-compatible model server and simulated
company systems on SQLite, served over HTTP on loopback so real clients are exercised end to end
(`sim.app`, `sim.runner`), and the agents that live in it (`sim.agents`).
"""
