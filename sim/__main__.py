"""`python -m sim [--host 127.0.0.1] [--port 8787] [--db .state/sim.db]`."""

from __future__ import annotations

from sim.app import main

main()
