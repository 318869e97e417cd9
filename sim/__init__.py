"""The embedded default world: a scripted OpenAI/Anthropic-compatible model server and simulated
company systems on SQLite, served over HTTP on loopback so real clients are exercised end to end.
"""

from __future__ import annotations

from sim.app import create_app, serve
from sim.runner import SimServer, free_port

__all__ = ["SimServer", "create_app", "free_port", "serve"]
