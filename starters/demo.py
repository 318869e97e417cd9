"""The demo: the whole embedded stack, one onboarding run with a days-long wait, then tear-down."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from contextlib import AsyncExitStack
from datetime import date, timedelta
from pathlib import Path

import httpx
import typer

from durable_agents import _ops as ops
from durable_agents.client import AgentClient
from starters import inbox, render
from starters.common import ui_link
from starters.devserver import DevServer, free_port

LEDGER_ACTIONS = ("create_mailbox", "order_laptop", "send_email")
TERMINAL = ("completed", "rejected", "aborted", "timed_out", "budget_exhausted", "failed")


def say(text: str = "", bold: bool = False) -> None:
    typer.secho(text, bold=bold)


def new_hire() -> dict[str, str]:
    return {
        "employee_id": f"E{uuid.uuid4().hex[:6].upper()}",
        "full_name": "Ada Lovelace",
        "personal_email": "ada@lovelace.example",
        "start_date": (date.today() + timedelta(days=14)).isoformat(),
        "ship_to": "12 St James's Square, London",
    }


async def wait_until(client, run_id: str, status: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        s = await ops.status(client, run_id)
        if s.status == status:
            return s
        if s.status in TERMINAL or s.status == "needs_attention":
            raise ops.RequestError(f"run {run_id} ended early ({s.status}): {s.last_error}")
        await asyncio.sleep(0.2)
    raise ops.RequestError(f"run {run_id} did not reach {status} within {timeout:g} s")


async def sign_in(base: str, state_dir: Path, person: str) -> str:
    """`agentctl login` as `person`, who signs in on the sim's pages as a browser would."""
    from sim.person import approve_device, password
    from starters import signin

    def shown(text: str) -> None:
        say(f"  {text}")
        code = re.search(r"code ([A-Z]+)", text)
        if code is not None:
            secret = password(state_dir, person)
            args = (base, code.group(1), person, secret)
            threading.Thread(target=approve_device, args=args, daemon=True).start()

    entry = await asyncio.to_thread(signin.login_device, shown)
    return str(entry["subject"])


def dev_server(state_dir: Path) -> DevServer:
    """The demo's own dev server, on free ports; it stops when the demo's process dies."""
    return DevServer(
        db_file=state_dir / "temporal.db",
        port=free_port(7233),
        ui_port=free_port(8233),
        die_with_parent=True,  # started from the main thread (services.demo)
    )


async def run_demo(dev: DevServer, state_dir: Path, keep: bool) -> bool:
    """The demo on a started dev server (the caller stops it)."""
    async with AsyncExitStack() as stack:
        return await _with_server(stack, dev, state_dir, keep)


async def _with_server(stack: AsyncExitStack, dev: DevServer, state_dir: Path, keep: bool) -> bool:
    from activities.settings import get_settings
    from sim.runner import SimServer

    sim = SimServer(state_dir / "sim.db", port=free_port(8787))
    await asyncio.to_thread(sim.start)
    stack.callback(sim.stop)
    os.environ["DURABLE_AGENTS_SIM_URL"] = sim.url
    # The people the demo plays sign in here (a file of the demo's own, not yours).
    os.environ["DURABLE_AGENTS_SIGNIN_FILE"] = str(state_dir / "demo-signin.json")
    # The worker below acts as the agents the sim just gave credentials to.
    os.environ["DURABLE_AGENTS_CREDENTIALS_FILE"] = str(sim.credentials)
    get_settings.cache_clear()
    say(f"sim world (model server + HR/IT/mail) on {sim.url}")

    from durable_agents._vocab.models import AgentRun, Decision
    from starters import signin
    from workers.client import connect
    from workers.main import build_worker

    client = await connect(dev.address, wait_seconds=30)
    worker = build_worker(client, graceful=timedelta(seconds=5))
    await stack.enter_async_context(worker)
    say(f"worker polling task queue {worker.task_queue!r}\n")

    say("hr-demo, of HR, signs in to start the onboarding: agentctl login", bold=True)
    starter = await sign_in(sim.url, state_dir, "hr-demo")
    say(f"signed in as {starter}, as the identity provider proves it\n")
    scopes = ["hr:write", "it:write", "mail:send"]
    hire, wid = new_hire(), ops.new_run_id("onboarding")
    run = AgentRun(agent="onboarding", input=hire, principal=starter, scopes=scopes)
    say(f"{starter} starts it: agentctl run onboarding --scope hr:write --scope it:write …")
    agents = AgentClient(client, prover=signin.prover)
    handle = await agents.start(run, run_id=wid)  # signed with hr-demo's start proof
    status = await handle.status()
    say(
        f"the run acts for {status.principal}, proven by the start proof; {starter} granted "
        f"onboarding {' '.join(scopes)} by starting it (`agentctl grants`)"
    )
    say(f"run id: {handle.id}", bold=True)
    say(f"Temporal UI: {ui_link(handle.id, client.namespace, dev.ui_url)}\n")

    waiting = await wait_until(client, handle.id, "waiting_event")
    say(
        f"the agent now waits for {waiting.waiting_for}: no process holds it, it could wait "
        "days.\nsending `clearance_granted` as the security team would …\n"
    )
    await handle.send_event(
        "clearance_granted", {"granted_by": "security-team", "level": "standard"}
    )
    await wait_until(client, handle.id, "waiting_approval")
    say("the welcome email is external, so it waits for HR. `agentctl approvals` shows:", bold=True)
    rows = await agents.pending_approvals()
    say(render.table(rows) + "\n")
    [row] = [r for r in rows if r["run"] == handle.id]
    say(f"what hana reads first: agentctl approvals show {handle.id} {row['approval']}")
    status = await handle.status()
    [asked] = [a for a in status.approvals if a.id == row["approval"]]
    say(render.approval(asked, status.agent) + "\n")
    say("hana (hr-managers) signs in: agentctl login", bold=True)
    hana = await sign_in(sim.url, state_dir, "hana")
    say(f"signed in as {hana}, as the identity provider proves it\n")
    say(f"{hana} approves: agentctl approve {handle.id} --digest {asked.digest}")
    decided = await handle.decide(
        Decision(approve=True, approver=hana, reason="warm and accurate", digest=asked.digest),
    )
    say(
        inbox.show(decided)
        + f"\n  (proof {decided.proof_id} from {decided.proof_issuer}, checked by the worker)\n"
    )
    outcome = await asyncio.wait_for(handle.result(), timeout=120)

    say("transcript", bold=True)
    say(render.transcript(await handle.transcript()) + "\n")
    say("outcome", bold=True)
    say(render.result(outcome) + "\n")
    # What the systems recorded for this run (one read), and who they say did it: each
    # learned that from the token it checked, not from the agent.
    async with httpx.AsyncClient(base_url=sim.url) as http:
        made = (await http.get("/ledger", params={"run": handle.id})).json()["entries"]
    counts = {a: sum(1 for e in made if e["action"] == a) for a in LEDGER_ACTIONS}
    say("sim ledger for this run: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for e in made:
        say(
            f"  {e['action']}: agent {e['agent']} for {e['principal']}, scope {e['scope']}, "
            f"token {e['token_id']}"
        )
    from activities.audit import audit_log

    trail = audit_log().trail(handle.id)
    verdict = audit_log().verify()
    said = ", ".join(
        " ".join(filter(None, (r.entry.tool, r.entry.outcome)))
        + (f" by {r.entry.approver}" if r.entry.approver else "")
        for r in trail
    )
    say(
        f"audit log: {said}; hash chain {'holds' if verdict.ok else 'is BROKEN'} "
        f"(`agentctl audit {handle.id}`)"
    )
    if keep:
        say(
            f"\nstack kept running: UI {dev.ui_url}, Temporal {dev.address}, sim {sim.url}. "
            "Ctrl-C stops it."
        )
        await asyncio.Event().wait()
    effects = [r for r in trail if r.entry.kind == "side_effect"]
    return (
        outcome.outcome == "completed"
        and decided.decided_by == hana == "hana"
        and bool(decided.proof_id)
        and all(v == 1 for v in counts.values())
        and all((e["agent"], e["principal"]) == ("onboarding", starter) for e in made)
        and len(effects) == 3
        and verdict.ok
    )
