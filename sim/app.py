"""The sim as one FastAPI app: model server, company systems, ledger and fault admin.

One app on one loopback port keeps the embedded default simple to start (tests, `make demo`):
the LLM base URLs and the company-systems base URL are the same address. The ticket system is
also an MCP server there, at `/mcp` (`sim.mcp_server`); its session manager runs in the app's
lifespan, so whoever serves the app must run the lifespan.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from sim import anthropic_api, company, mcp_server, openai_api, support
from sim.db import Database
from sim.faults import FaultBook, admin_router
from sim.ledger import LEDGER_SCHEMA, actions_router, ledger_router

DEFAULT_DB = Path(".state/sim.db")
DEFAULT_PORT = 8787


def create_app(db_path: str | Path) -> FastAPI:
    """Build the app; state (SQLite file, fault book) lives on `app.state` for introspection."""
    db = Database(db_path)
    db.apply_schema(LEDGER_SCHEMA)
    db.apply_schema(support.SUPPORT_SCHEMA)
    faults = FaultBook()
    mcp = mcp_server.build_server(db)
    mcp_routes = mcp_server.routes(mcp)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    app = FastAPI(title="durable-agents sim", version="1", lifespan=lifespan)
    app.state.db = db
    app.state.faults = faults
    app.state.mcp = mcp
    app.include_router(openai_api.router(faults))
    app.include_router(anthropic_api.router(faults))
    app.include_router(actions_router(db, faults, company.ACTIONS))
    app.include_router(company.mail_router(db))
    app.include_router(actions_router(db, faults, support.ACTIONS))
    app.include_router(support.support_router(db))
    app.include_router(ledger_router(db))
    app.include_router(admin_router(faults))
    app.router.routes.extend(mcp_routes)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def serve(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, db_path: str | Path = DEFAULT_DB
) -> None:
    """Run the sim in the foreground until interrupted."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the sim binds loopback only, not {host!r}")
    uvicorn.run(create_app(db_path), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file for the ledger")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.db)


if __name__ == "__main__":
    main()
