"""Idempotent actions and the ledger that records every side effect exactly once.

A company system is a list of `Action`s (path, pydantic body, effect function). This module
gives every mutating action the payment-API contract: an `Idempotency-Key` is required, a
repeat with the same key and body replays the stored response (`Idempotent-Replayed: true`)
without a new effect, and a different body under a used key is a 409. The idempotency check,
the effect and the ledger row share one transaction, so concurrent duplicates cannot both win.
Faults (`x-sim-fault` or queued) hit actions by name, before or after the commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from sim.db import Database
from sim.faults import FAULT_HEADER, Fault, FaultBook, FaultError
from sim.idp import Grant, IdentityProvider, Refusal, now_iso

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_action ON ledger (action);
"""
# Who did it, as the token the system accepted says (columns added to ledgers made before).
GRANT_COLUMNS = ("agent", "principal", "scope", "token_id")

Effect = Callable[[sqlite3.Connection, Any], dict[str, Any]]
_ERROR_FAULTS = {
    "rate_limit": 429,
    "unavailable": 503,
    "server_error": 500,
    "auth": 401,
    "refused": 422,
}


class ActionError(Exception):
    """Raised by an effect to refuse the request (e.g. refund not eligible); nothing is stored."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class Action:
    """One endpoint of a company system; `name` is its ledger action and fault target."""

    name: str
    path: str
    body: type[BaseModel]
    effect: Effect
    status_code: int = 201
    mutating: bool = True
    audience: str = ""
    """The system, as the audience its tokens must name; "" for actions that need none."""
    scope: str = ""
    """The scope a token must grant for this action."""


def error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


def migrate(db: Database) -> None:
    """Create the ledger, and add the grant columns to a ledger made before they existed."""
    db.apply_schema(LEDGER_SCHEMA)
    have = {row["name"] for row in db.query("PRAGMA table_info(ledger)")}
    with db.transaction() as conn:
        for column in GRANT_COLUMNS:
            if column not in have:
                conn.execute(f"ALTER TABLE ledger ADD COLUMN {column} TEXT")


def _bind_token(conn: sqlite3.Connection, grant: Grant, key: str) -> None:
    """A token is good for one call: its id is bound to the first idempotency key it came
    with, and refused with any other (a token copied from one call into another)."""
    row = conn.execute(
        "SELECT idempotency_key FROM token_uses WHERE jti = ?", (grant.token_id,)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO token_uses (jti, idempotency_key, first_seen) VALUES (?, ?, ?)",
            (grant.token_id, key, now_iso()),
        )
    elif row["idempotency_key"] != key:
        raise ActionError(
            401,
            f"token {grant.token_id!r} was already used for another call; a token is good "
            "for the one call it was issued for: obtain a new one",
        )


def commit(
    db: Database, action: Action, key: str, body: BaseModel, grant: Grant | None = None
) -> tuple[int, Any, bool]:
    """Run the effect once per key; returns (status, response, replayed). Raises ActionError.

    The HTTP endpoints below and the MCP server (`sim.mcp_server`) both record effects here;
    `grant` is what the caller's token proved, recorded beside the effect."""
    request = json.dumps(body.model_dump(mode="json"), sort_keys=True)
    with db.transaction() as conn:
        if not action.mutating:
            return action.status_code, action.effect(conn, body), False
        if grant is not None:
            _bind_token(conn, grant, key)
        row = conn.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
        if row is not None:
            if (row["action"], row["request"]) != (action.name, request):
                # Never what the other request was: it may be someone else's (an email's body).
                raise ActionError(
                    409,
                    f"Idempotency-Key {key[:200]!r} was already used for a different request; "
                    "use a new key for a new operation.",
                )
            return row["status_code"], json.loads(row["response"]), True
        response = action.effect(conn, body)
        who = (grant.agent, grant.principal, grant.scope, grant.token_id) if grant else (None,) * 4
        conn.execute(
            "INSERT INTO ledger (action, idempotency_key, request, response, status_code, "
            "created_at, agent, principal, scope, token_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (action.name, key, request, json.dumps(response), action.status_code, now_iso(), *who),
        )
        return action.status_code, response, False


async def _before_commit(fault: Fault | None) -> Response | None:
    """Failures that happen before any effect: error answers and pre-commit delays."""
    if fault is None:
        return None
    if fault.name in _ERROR_FAULTS:
        headers = {}
        if fault.name == "rate_limit":
            headers["Retry-After"] = str(round(fault.number("retry_after", 1)))
        return error(_ERROR_FAULTS[fault.name], f"simulated fault: {fault.name}", headers)
    if fault.name == "slow" or (fault.name == "delay" and fault.params.get("when") == "before"):
        await asyncio.sleep(fault.number("seconds", 3))
    return None


async def _after_commit(fault: Fault | None) -> Response | None:
    """Failures after the effect is committed: the caller cannot tell it happened."""
    if fault is None:
        return None
    if fault.name == "delay" and fault.params.get("when", "after") == "after":
        await asyncio.sleep(fault.number("seconds", 3))
    if fault.name == "commit_then_fail":
        return error(500, "simulated fault: the effect was committed, then the request failed")
    if fault.name == "off_contract":
        # A 2xx whose body is not what the API promises (a bad deploy on the other side).
        return JSONResponse({"ok": True, "note": "simulated fault: off-contract answer"}, 201)
    return None


def _endpoint(
    db: Database, book: FaultBook, action: Action, idp: IdentityProvider | None
) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        key = request.headers.get("idempotency-key", "")
        if action.mutating and not key.strip():
            return error(400, f"{action.name} changes state: an Idempotency-Key header is required")
        grant: Grant | None = None
        if idp is not None and action.audience:
            checked = idp.check(request.headers.get("authorization"), action.audience, action.scope)
            if isinstance(checked, Refusal):
                return _refused(checked)
            grant = checked
        try:
            body = action.body.model_validate_json(await request.body())
            fault = book.resolve("company", action.name, request.headers.get(FAULT_HEADER))
        except ValidationError as exc:
            detail = exc.errors(include_url=False, include_context=False)
            return JSONResponse({"detail": detail}, status_code=422)
        except FaultError as exc:
            return error(400, str(exc))
        early = await _before_commit(fault)
        if early is not None:
            return early
        try:
            status, payload, replayed = await run_in_threadpool(
                commit, db, action, key, body, grant
            )
        except ActionError as exc:
            if exc.status_code in (401, 403):
                return _refused(Refusal(exc.status_code, exc.message))
            return error(exc.status_code, exc.message)
        late = await _after_commit(fault)
        if late is not None:
            return late
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(payload, status_code=status, headers=headers)

    endpoint.__name__ = action.name
    return endpoint


def _refused(refusal: Refusal) -> JSONResponse:
    # RFC 6750: what was wrong with the token, in the challenge too.
    code = "invalid_token" if refusal.status == 401 else "insufficient_scope"
    challenge = f'Bearer realm="sim", error="{code}"'
    return error(refusal.status, refusal.message, {"WWW-Authenticate": challenge})


def actions_router(
    db: Database, book: FaultBook, actions: list[Action], idp: IdentityProvider | None = None
) -> APIRouter:
    """POST endpoints for a company system's actions; with `idp`, an action that names an
    audience takes only the provider's tokens for it."""
    router = APIRouter(tags=["company"])
    for action in actions:
        router.add_api_route(action.path, _endpoint(db, book, action, idp), methods=["POST"])
    return router


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    entry = dict(row)
    entry["request"] = json.loads(entry["request"])
    entry["response"] = json.loads(entry["response"])
    return entry


def entries(
    db: Database, action: str | None = None, run: str | None = None
) -> list[dict[str, Any]]:
    """Ledger rows, oldest first, optionally for one action, or for one run (its idempotency
    keys are `<run>/<call>`, its sub-agents' `<run>--…/<call>`)."""
    clauses, params = [], []
    if action:
        clauses.append("action = ?")
        params.append(action)
    if run:
        clauses.append("(idempotency_key LIKE ? ESCAPE '\\' OR idempotency_key LIKE ? ESCAPE '\\')")
        escaped = run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [f"{escaped}/%", f"{escaped}--%"]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.query(f"SELECT * FROM ledger {where} ORDER BY id", tuple(params))
    return [_entry(row) for row in rows]


def ledger_router(db: Database) -> APIRouter:
    """Read the ledger: what happened, and how many times."""
    router = APIRouter(prefix="/ledger", tags=["ledger"])

    @router.get("")
    def list_entries(action: str | None = None, run: str | None = None) -> dict[str, Any]:
        return {"entries": entries(db, action, run)}

    @router.get("/count")
    def count(action: str | None = None) -> dict[str, int]:
        where, params = ("WHERE action = ?", (action,)) if action else ("", ())
        return {"count": int(db.query(f"SELECT COUNT(*) FROM ledger {where}", params)[0][0])}

    return router
