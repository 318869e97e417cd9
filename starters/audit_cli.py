"""`agentctl audit`: the audit trail of a run, and the check that the log was not tampered with.

The trail is shown safe to read (a reason with a newline cannot forge an entry's line); `--json`
prints the entries exactly as the hash chain covers them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from durable_agents.errors import RequestError
from durable_agents.starters.common import call, fail

if TYPE_CHECKING:
    from durable_agents.activities.audit import Recorded


def _line(r: Recorded) -> str:
    from durable_agents._vocab.text import printable

    e = r.entry
    who = f"{e.agent}/{e.agent_version} for {e.principal}" if e.agent else e.principal
    proof = f" [proof {e.details['proof_id']}]" if e.details.get("proof_id") else ""
    if e.kind == "approval":
        what = f"approval {e.details.get('approval')} of {e.tool}: {e.outcome}"
        what += f" by {e.approver}{proof}" if e.approver else ""
        what += f" ({e.details['reason']})" if e.details.get("reason") else ""
    elif e.kind in ("start", "operator"):
        what = f"{e.outcome.replace('_', '-')} by {e.approver}{proof}"
        what += f" ({e.details['reason']})" if e.details.get("reason") else ""
    else:
        what = f"{e.tool} [{e.side_effect}] {e.kind.replace('_', ' ')}: {e.outcome}"
    grant = ", ".join(e.scopes) or "no scopes"
    line = f"#{r.seq:<5} {r.at[:19]}  {e.run}  {what}  · {who} · grant: {grant} · key {e.key}"
    return printable(line)


def audit(
    run_id: Annotated[
        str | None,
        typer.Argument(help="Run (workflow id); omit for all. `prune`: retention (--before)."),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the hash chain; with RUN, also each person's proof it keeps against "
            "the identity provider's keys.",
        ),
    ] = False,
    against_systems: Annotated[
        bool,
        typer.Option(
            "--against-systems",
            help="Compare the run's side effects with what the systems recorded "
            "(DURABLE_AGENTS_SYSTEM_LEDGERS; by default the company systems').",
        ),
    ] = False,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            help="With `prune`: remove the entries written before this date (ISO, UTC), "
            "keeping a checkpoint from which the chain stays verifiable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Print the audit trail (side effects and approval decisions), or verify the log's chain."""
    from durable_agents.activities.audit import AuditLog, PostgresAuditLog, audit_path
    from durable_agents.settings import current

    url = current().audit_url
    log: AuditLog | PostgresAuditLog
    if url is not None:
        path: object = "in PostgreSQL (DURABLE_AGENTS_AUDIT_URL)"
        try:
            log = PostgresAuditLog(url.get_secret_value())
        except Exception as exc:  # noqa: BLE001 - psycopg's errors, said in one line
            fail(f"cannot open the audit log in PostgreSQL: {type(exc).__name__}: {exc}")
    else:
        path = audit_path()
        if not audit_path().exists():
            fail(
                f"no audit log at {path}: set DURABLE_AGENTS_AUDIT_PATH (or "
                "DURABLE_AGENTS_STATE_DIR, or DURABLE_AGENTS_AUDIT_URL) to where the workers "
                "write it"
            )
        log = AuditLog(audit_path())
    if run_id == "prune":
        _prune(log, before)
        return
    if before is not None:
        fail("--before goes with `agentctl audit prune --before DATE`")
    if against_systems:
        if not run_id:
            fail("name the run: agentctl audit RUN --against-systems")
        _against_systems(log, run_id, as_json)
        return
    if verify:
        verdict = log.verify()
        if as_json:
            typer.echo(json.dumps(verdict.__dict__))
        if not verdict.ok:
            fail(
                f"the audit log at {path} is broken at entry #{verdict.broken_at}: "
                f"{verdict.problem} ({verdict.entries} entries read)"
            )
        if not as_json:
            since = f" from the checkpoint after entry #{verdict.since}" if verdict.since else ""
            typer.echo(f"audit log {path}: {verdict.entries} entries, the hash chain holds{since}")
        if run_id:
            checked = call(lambda: _verify_proofs(log, run_id))
            if not as_json:
                typer.echo(
                    f"{run_id}: {checked} proof(s) of who started, decided or operated it "
                    "verified against the identity provider's keys"
                )
        return
    trail = log.trail(run_id)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in trail], indent=2))
        return
    if not trail:
        typer.echo(f"no audit entries{' for ' + run_id if run_id else ''}", err=True)
    for r in trail:
        typer.echo(_line(r))


async def _verify_proofs(log: Any, run_id: str) -> int:
    """Check each person's proof the run's audit entries keep: signed by the identity
    provider's keys (the JWKS keeps old ones), for the workers' audience, valid when issued,
    bound to this run and to what the entry records, by the person it names. How many held;
    RequestError naming the first entry that does not."""
    from durable_agents._vocab.proofs import sha256
    from durable_agents.activities.proofs import ProofVerifier, configured_trust

    verifier = ProofVerifier(configured_trust())
    checked = 0
    for r in log.trail(run_id):
        e = r.entry
        token = e.details.get("proof")
        if not token:
            continue
        try:
            proven = await verifier.verify(token, as_evidence=True)
        except Exception as exc:  # noqa: BLE001 - a refusal or the provider away: said as is
            raise RequestError(f"entry #{r.seq}: its proof does not verify: {exc}") from None
        said = proven.details
        bound = said.get("run") == e.run and proven.subject == e.approver
        reason = e.details.get("reason") or ""
        if e.kind != "start":
            bound = bound and said.get("reason_sha256") == (sha256(reason) if reason else None)
        if e.kind == "approval":
            bound = bound and (said.get("approval_id"), said.get("digest")) == (
                e.details.get("approval"),
                e.details.get("digest"),
            )
            bound = bound and said.get("approve") == (e.outcome == "approved")
        else:
            bound = bound and said.get("action") == e.outcome
        if not bound:
            raise RequestError(
                f"entry #{r.seq}: its proof ({proven.subject}, {said}) is not for what the entry "
                f"records ({e.kind} {e.outcome} by {e.approver})"
            )
        checked += 1
    return checked


def _prune(log: Any, before: str | None) -> None:
    """`agentctl audit prune --before DATE`: retention with a checkpoint."""
    from datetime import UTC, datetime

    from durable_agents.activities.audit import AuditBroken

    if before is None:
        fail("say up to when: agentctl audit prune --before 2026-01-01")
    try:
        cutoff = datetime.fromisoformat(before)
    except ValueError:
        fail(f"--before {before!r} is not an ISO date or time (e.g. 2026-01-01)")
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=UTC)
    try:
        pruned = log.prune(cutoff)
    except AuditBroken as exc:
        fail(str(exc))
    typer.echo(
        f"pruned {pruned.entries} entries written before {cutoff.isoformat()}; the chain is "
        f"verifiable from the checkpoint after entry #{pruned.since}"
        if pruned.entries
        else f"no entries written before {cutoff.isoformat()}: nothing pruned"
    )


def _against_systems(log: Any, run_id: str, as_json: bool) -> None:
    """The audit trail's side effects beside what the systems themselves recorded, by
    idempotency key: every effect one has and the other lacks is named, and every effect whose
    token (as the system recorded it) names another agent or principal; exit 1 if any."""
    import httpx

    from durable_agents.settings import current

    named = current().system_ledgers
    if not named:
        raise RequestError(
            "--against-systems needs the systems' ledgers: set DURABLE_AGENTS_SYSTEM_LEDGERS to "
            "their base URLs (comma-separated), each serving GET /ledger?run=RUN"
        )
    ledgers = [u.strip().rstrip("/") for u in named.split(",") if u.strip()]
    entries = {r.entry.key: r.entry for r in log.trail(run_id) if r.entry.kind == "side_effect"}
    audited = {key: e.tool for key, e in entries.items()}
    recorded: dict[str, str] = {}
    # Who the system says acted (agent, principal), where it learned that from a token.
    says: dict[str, tuple[str, str]] = {}
    for base in ledgers:
        try:
            resp = httpx.get(f"{base}/ledger", params={"run": run_id}, timeout=10)
            resp.raise_for_status()
            rows = resp.json()["entries"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            fail(f"cannot read the systems' record at {base}/ledger: {type(exc).__name__}: {exc}")
        recorded |= {str(r["idempotency_key"]): str(r.get("action", "")) for r in rows}
        says |= {
            str(r["idempotency_key"]): (str(r["agent"]), str(r["principal"]))
            for r in rows
            if r.get("agent") and r.get("principal")
        }
    only_audit = sorted(set(audited) - set(recorded))
    only_systems = sorted(set(recorded) - set(audited))
    # The same effect, but the token the system checked names someone else than the trail.
    who_differs = {
        key: (f"{entries[key].agent} for {entries[key].principal}", f"{a} for {p}")
        for key, (a, p) in says.items()
        if key in entries and (a, p) != (entries[key].agent, entries[key].principal)
    }
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run": run_id,
                    "agree": sorted(set(audited) & set(recorded)),
                    "only_in_audit": only_audit,
                    "only_in_systems": only_systems,
                    "who_differs": {k: list(v) for k, v in who_differs.items()},
                },
                indent=2,
            )
        )
    else:
        from durable_agents._vocab.text import printable

        for key in only_audit:
            typer.echo(
                printable(f"in the audit trail, not recorded by any system: {key} ({audited[key]})")
            )
        for key in only_systems:
            typer.echo(
                printable(f"recorded by a system, not in the audit trail: {key} ({recorded[key]})")
            )
        for key, (trail, token) in who_differs.items():
            typer.echo(
                printable(
                    f"{key} ({audited[key]}): the audit trail says {trail}, the token the "
                    f"system accepted says {token}"
                )  # fmt: skip
            )
        agree = len(set(audited) & set(recorded)) - len(who_differs)
        typer.echo(
            f"{agree} effects agree; {len(only_audit)} only in the audit trail, "
            f"{len(only_systems)} only in the systems' record"
            + (f"; {len(who_differs)} made by someone else" if who_differs else "")
        )
    if only_audit or only_systems or who_differs:
        raise typer.Exit(1)
