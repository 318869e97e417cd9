"""The sim as one FastAPI app: model server, company systems, ledger and fault admin.

One app on one loopback port keeps the embedded default simple to start (tests, `make demo`):
the LLM base URLs and the company-systems base URL are the same address. The ticket system is
also an MCP server there, at `/mcp` (`sim.mcp_server`); its session manager runs in the app's
lifespan, so whoever serves the app must run the lifespan. The identity provider whose tokens
the systems take is at `/idp` (`sim.idp`).
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
from sim.idp import ADMIN_FILE, CREDENTIALS_FILE, ISSUER, IdentityProvider, shipped_clients
from sim.ledger import actions_router, ledger_router, migrate
from sim.people import PEOPLE_FILE, People
from sim.signin import idp_router

DEFAULT_DB = Path(".state/sim.db")
DEFAULT_PORT = 8787
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(db_path: str | Path, credentials: Path | None = None) -> FastAPI:
    """Build the app; state (SQLite file, fault book, identity provider) lives on `app.state`
    for introspection. The shipped agents' credentials are written to `credentials` (default:
    `credentials.toml` beside the database), the file workers read."""
    db = Database(db_path)
    migrate(db)
    db.apply_schema(support.SUPPORT_SCHEMA)
    faults = FaultBook()
    idp = IdentityProvider(db)
    state_dir = (credentials or Path(db_path)).parent
    idp.bootstrap(credentials or state_dir / CREDENTIALS_FILE, shipped_clients())
    idp.bootstrap_admin(state_dir / ADMIN_FILE)
    people = People(db, ISSUER, idp.sign, lambda token: idp.verify(token, ISSUER))
    everyone, services = directory_people()
    people.bootstrap(state_dir / PEOPLE_FILE, sorted(everyone - services))
    people.services = services
    idp.delegation = people.delegation
    people.agent_scopes = idp.agent_scopes
    mcp = mcp_server.build_server(db)
    mcp_routes = mcp_server.routes(mcp, idp)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    app = FastAPI(title="durable-agents sim", version="1", lifespan=lifespan)
    app.state.db = db
    app.state.faults = faults
    app.state.mcp = mcp
    app.state.idp = idp
    app.state.people = people
    app.include_router(idp_router(idp, people))
    app.include_router(openai_api.router(faults))
    app.include_router(anthropic_api.router(faults))
    app.include_router(actions_router(db, faults, company.ACTIONS, idp))
    app.include_router(company.mail_router(db))
    app.include_router(actions_router(db, faults, support.ACTIONS, idp))
    app.include_router(support.support_router(db))
    app.include_router(ledger_router(db))
    app.include_router(admin_router(faults))
    app.router.routes.extend(mcp_routes)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def directory_people() -> tuple[frozenset[str], frozenset[str]]:
    """Everyone the installed agents' directories name (the sim world's and any plugin's), and
    the service principals among them: the sim's provider stands for the company's, which
    knows everyone a worker does. People sign in; service principals never do."""
    from durable_agents import Directory, discover
    from durable_agents.errors import CatalogError
    from sim.agents import AGENTS

    try:
        directory = discover().directory
    except CatalogError:  # a broken plugin is the worker's to report; the sim's world stands
        directory = AGENTS.directory or Directory()
    return directory.people, directory.services


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    db_path: str | Path = DEFAULT_DB,
    container: bool = False,
) -> None:
    """Run the sim in the foreground until interrupted. It binds loopback only, unless
    `container` says it runs in a container's own network namespace (docker-compose), where
    other containers must reach it and the host publishes it on loopback."""
    if host not in LOOPBACK and not container:
        raise ValueError(
            f"the sim binds loopback only, not {host!r} (inside a container: --container)"
        )
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
