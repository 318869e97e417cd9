"""People prove who they are: device sign-in at the sim's identity provider (`agentctl login`,
its pages), proofs bound to one message, and what the run and the provider refuse when
someone tries otherwise (another person's name, another run, a second approval, a replayed,
expired, forged or wrong-audience proof, a provider that rotated its key)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from durable_agents._vocab import proofs
from durable_agents._vocab.schemas import Approval, Decision, EventSignal
from durable_agents.workflows.agent import AgentWorkflow
from sim.idp import ADMIN_FILE, ISSUER
from sim.person import approve_authorization, approve_device, password
from sim.world import world
from tests.helpers import sim_token, start_onboarding, wait_for_status
from tests.people import People, login

AGENTCTL = [str(Path(sys.executable).parent / "agentctl")]


def admin(sim: Any) -> dict[str, str]:
    secret = (sim.db_path.parent / ADMIN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {secret}"}


def cli_env(sim: Any, tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        **world(sim.url),
        "DURABLE_AGENTS_SIGNIN_FILE": str(tmp_path / "signin.json"),
    }


def agentctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENTCTL, *args], env=env, capture_output=True, text=True, timeout=60)


# --- signing in ---------------------------------------------------------------------------


def test_agentctl_login_signs_a_person_in_with_the_device_flow(sim: Any, tmp_path: Path) -> None:
    env = cli_env(sim, tmp_path)
    done = login(AGENTCTL, env, sim.url, sim.db_path.parent, "sam")
    assert done.returncode == 0, done.stderr
    assert "To sign in, open http://127.0.0.1:" in done.stdout and "/idp/device" in done.stdout
    assert "signed in as sam at urn:durable-agents:sim:idp" in done.stdout
    kept = tmp_path / "signin.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # it holds a refresh token
    who = agentctl(env, "whoami", "--json")
    assert who.returncode == 0 and json.loads(who.stdout)["subject"] == "sam", who.stderr

    # An access token that ran out is refreshed without signing in again.
    data = json.loads(kept.read_text())
    data["default"]["expires_at"] = time.time() - 5
    kept.write_text(json.dumps(data))
    assert agentctl(env, "whoami").stdout.startswith("sam (issuer")
    assert json.loads(kept.read_text())["default"]["expires_at"] > time.time()

    refresh = json.loads(kept.read_text())["default"]["refresh_token"]
    assert agentctl(env, "logout").stdout.strip() == "signed out"
    # The provider revoked it: a copy left behind renews nothing.
    again = httpx.post(
        f"{sim.url}/idp/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "agentctl"},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    out = agentctl(env, "whoami")
    assert out.returncode == 1 and "not signed in: run `agentctl login` first" in out.stderr


def test_a_refused_consent_signs_nobody_in(sim: Any, tmp_path: Path) -> None:
    env = cli_env(sim, tmp_path)
    done = login(AGENTCTL, env, sim.url, sim.db_path.parent, "sam", allow=False)
    assert done.returncode == 1 and "sign-in failed: access_denied" in done.stderr
    assert agentctl(env, "whoami").returncode == 1


def test_the_sign_in_page_wants_the_password_and_its_own_form(sim: Any) -> None:
    with httpx.Client(base_url=sim.url) as http:
        start = http.post(
            "/idp/device_authorization", data={"client_id": "agentctl", "scope": "openid runs"}
        ).json()
        wrong = approve_device(sim.url, start["user_code"], "sam", "not-her-password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        page = http.get("/idp/device")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        # A form posted from elsewhere (no CSRF cookie) is refused and signs nobody in.
        forged = http.post(
            "/idp/device",
            data={
                "csrf": "x",
                "user_code": start["user_code"],
                "username": "sam",
                "password": password(sim.db_path.parent, "sam"),
            },
        )
        assert forged.status_code == 403
        poll = http.post(
            "/idp/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": start["device_code"],
                "client_id": "agentctl",
            },
        )
        assert poll.status_code == 400 and poll.json()["error"] == "authorization_pending"


# --- the provider and the systems, as strict as real ones -------------------------------


def test_registering_a_client_needs_the_admin_and_takes_over_nothing(sim: Any) -> None:
    body = {"agent": "onboarding", "scopes": ["hr:write"], "client_id": "agent-onboarding"}
    anonymous = httpx.post(f"{sim.url}/idp/clients", json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith('Bearer realm="sim-idp"')
    rekey = httpx.post(f"{sim.url}/idp/clients", json=body, headers=admin(sim))
    assert rekey.status_code == 409 and "registered once" in rekey.json()["detail"]
    shadow = {"agent": "onboarding", "scopes": ["hr:write"], "client_id": "agent-evil"}
    assert httpx.post(f"{sim.url}/idp/clients", json=shadow, headers=admin(sim)).status_code == 409
    # The real worker's secret still works: nothing was re-keyed.
    assert sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write")


def test_an_agent_gets_tokens_only_for_the_systems_it_calls(sim: Any) -> None:
    creds = sim.credentials.read_text()
    assert "agent-onboarding" in creds
    with pytest.raises(httpx.HTTPStatusError) as info:
        sim_token(sim.url, sim.credentials, "onboarding", "payments", "hr:write")
    answer = info.value.response.json()
    assert (
        answer["error"] == "invalid_target"
        and "its systems: hr, it, mail" in answer["error_description"]
    )


def test_refusals_carry_the_bearer_challenge_and_conflicts_echo_nothing(sim: Any) -> None:
    token = sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write")
    key = f"people-{uuid.uuid4().hex[:8]}"
    mailbox = {"employee_id": "E-ppl", "full_name": "Pe Ople"}
    with httpx.Client(base_url=sim.url) as http:
        first = http.post(
            "/hr/mailboxes",
            json=mailbox,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key + "/1"},
        )
        assert first.status_code in (200, 201), first.text
        reused = http.post(
            "/hr/mailboxes",
            json=mailbox,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key + "/2"},
        )
        assert reused.status_code == 401
        assert reused.headers["www-authenticate"] == 'Bearer realm="sim", error="invalid_token"'
        other = sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write")
        conflict = http.post(
            "/hr/mailboxes",
            json={"employee_id": "E-other", "full_name": "Secret Name"},
            headers={"Authorization": f"Bearer {other}", "Idempotency-Key": key + "/1"},
        )
    assert conflict.status_code == 409
    assert "E-ppl" not in conflict.text and "Pe Ople" not in conflict.text


# --- proofs in runs -----------------------------------------------------------------------


async def at_the_gate(env: Any, task_queue: str, principal: str = "tester") -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await start_onboarding(env.client, task_queue, principal=principal)
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval")
    return handle


async def refused(handle: WorkflowHandle, decision: Decision) -> str:  # type: ignore[type-arg]
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(AgentWorkflow.decide, decision)
    return str(info.value.cause)


async def pending(handle: WorkflowHandle) -> Approval:  # type: ignore[type-arg]
    [approval] = [a for a in (await handle.query(AgentWorkflow.status)).approvals]
    return approval


def signed_by_sim(sim: Any, claims: dict[str, Any]) -> str:
    """A token signed with the provider's own key (what only the provider can make)."""
    return str(sim.app.state.idp.sign(claims))


async def test_a_proof_decides_its_own_approval_once_and_nothing_else(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People, ledger: Any
) -> None:
    a = await at_the_gate(ts_env, task_queue)
    b = await at_the_gate(ts_env, task_queue)
    apr_a, apr_b = await pending(a), await pending(b)
    for_a = people.decision(a.id, apr_a, "hana", True)

    # Run A's proof cannot decide run B, nor reject A, nor carry another reason.
    assert "the proof is for another message (run:" in await refused(b, for_a)
    assert "(approve: 'True', this message: 'False')" in await refused(
        a, for_a.model_copy(update={"approve": False})
    )
    assert "reason_sha256" in await refused(a, for_a.model_copy(update={"reason": "sneaky"}))
    # Signed in as sam, nobody decides as lee: a name that is not the proof's is refused.
    as_lee = people.decision(a.id, apr_a, "hugo", True).model_copy(update={"approver": "lee"})
    assert "approver 'lee' is not who signed the proof ('hugo')" in await refused(a, as_lee)

    decided = await a.execute_update(AgentWorkflow.decide, for_a)
    assert (decided.decided_by, decided.state) == ("hana", "approved") and decided.proof_id
    # The same proof again: used up, whatever it would decide.
    assert "this proof was already used" in await refused(a, for_a)
    assert (await a.result()).outcome == "completed"

    # B's own approver, with B's own proof.
    await b.execute_update(AgentWorkflow.decide, people.decision(b.id, apr_b, "hugo", True))
    assert (await b.result()).outcome == "completed"
    assert ledger(a.id, "send_email") == 1 and ledger(b.id, "send_email") == 1


async def test_expired_forged_and_wrong_audience_proofs_are_refused(
    sim: Any, ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    handle = await at_the_gate(ts_env, task_queue)
    approval = await pending(handle)
    details = proofs.decision(handle.id, approval.id, True, approval.digest)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "hana",
        "aud": "durable-agents",
        "iat": now - 600,
        "exp": now - 300,
        "jti": uuid.uuid4().hex,
        "authorization_details": [details],
    }
    expired = signed_by_sim(sim, claims)
    wrong_audience = signed_by_sim(sim, claims | {"aud": "hr", "exp": now + 300})
    kid = sim.app.state.idp.jwks["keys"][0]["kid"]
    mine = RSAKey.generate_key(2048, parameters={"kid": kid})
    forged = jwt.encode({"alg": "RS256", "kid": kid}, claims | {"exp": now + 300}, mine)
    none_alg = ".".join(
        [
            jwt.encode({"alg": "RS256", "kid": kid}, claims, mine).split(".")[0],
            forged.split(".")[1],
            "",
        ]
    )
    said = {}
    for name, token in [
        ("expired", expired),
        ("audience", wrong_audience),
        ("forged", forged),
        ("unsigned", none_alg),
    ]:
        said[name] = await refused(
            handle, Decision(approve=True, approval_id=approval.id, proof=token)
        )
    assert "expired" in said["expired"], said
    assert "aud" in said["audience"], said
    assert "not valid" in said["forged"] and "signature" in said["forged"].lower(), said
    assert "not valid" in said["unsigned"], said
    assert all("agentctl login" in why for why in said.values()), said
    assert (await pending(handle)).state == "pending"
    await handle.execute_update(
        AgentWorkflow.decide, people.decision(handle.id, approval, "hana", True)
    )
    assert (await handle.result()).outcome == "completed"


async def test_the_provider_rotates_its_key_mid_run_and_decisions_still_go_through(
    sim: Any, ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    handle = await at_the_gate(ts_env, task_queue)
    old = people.decision(handle.id, await pending(handle), "hana", True, "before")
    rotated = httpx.post(f"{sim.url}/idp/keys/rotate", headers=admin(sim))
    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid in [k["kid"] for k in httpx.get(f"{sim.url}/idp/jwks").json()["keys"]]
    new = people.decision(handle.id, await pending(handle), "hana", True)
    header = json.loads(__import__("base64").urlsafe_b64decode(new.proof.split(".")[0] + "=="))
    assert header["kid"] == new_kid  # signed with a key the worker has not seen yet
    decided = await handle.execute_update(AgentWorkflow.decide, new)
    assert decided.state == "approved"
    assert (await handle.result()).outcome == "completed"
    # A proof the old key signed before the rotation still verifies (the JWKS keeps it).
    assert old.proof and old.proof.split(".")[0] != new.proof.split(".")[0]  # type: ignore[union-attr]


async def test_a_signal_with_a_proof_for_someone_else_changes_nothing(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    handle = await at_the_gate(ts_env, task_queue)
    approval = await pending(handle)
    mallory = people.decision(handle.id, approval, "mallory", True)
    await handle.signal(AgentWorkflow.approve, mallory)
    for _ in range(100):
        status = await handle.query(AgentWorkflow.status)
        if status.refused:
            break
        await asyncio.sleep(0.05)
    assert "'mallory' may not decide approval apr-1" in status.refused[-1].reason
    assert status.approvals[0].state == "pending"
    await handle.signal(AgentWorkflow.approve, people.decision(handle.id, approval, "hana", True))
    assert (await handle.result()).outcome == "completed"


# --- delegation: a run acts for whoever proved they started it, within their grant --------


def start_proof(people: People, person: str, run: str, data: dict[str, Any]) -> str:
    scopes = ["hr:write", "it:write", "mail:send"]
    from durable_agents._vocab.schemas import AgentRun

    shape = AgentRun(agent="onboarding", input=data)
    return people.proof(person, proofs.start(run, shape, scopes))


def test_an_agent_gets_no_token_for_a_person_who_granted_it_nothing(sim: Any) -> None:
    with pytest.raises(httpx.HTTPStatusError) as info:
        sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write", principal="maria")
    answer = info.value.response.json()
    assert (
        answer["error"] == "consent_required"
        and "maria has granted onboarding nothing" in (answer["error_description"])
    )
    # A service principal (runs code starts) needs no person's grant.
    assert sim_token(sim.url, sim.credentials, "onboarding", "hr", "hr:write", principal="system")


async def test_nobody_starts_a_run_for_someone_else(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    from durable_agents._vocab.schemas import AgentRun
    from tests.helpers import hire

    data = hire()
    client = ts_env.client

    async def outcome(run: AgentRun, wid: str) -> str:
        handle = await client.start_workflow(AgentWorkflow.run, run, id=wid, task_queue=task_queue)
        with pytest.raises(Exception) as info:  # noqa: PT011 - the run fails as InvalidRun
            await handle.result()
        return str(info.value.cause)  # type: ignore[attr-defined]

    # No proof: a person's name alone starts nothing.
    wid = f"for-maria-{uuid.uuid4().hex[:6]}"
    bare = AgentRun(agent="onboarding", input=data, principal="maria")
    assert "'maria' is a person" in await outcome(bare, wid)
    # sam's proof, claiming maria: refused.
    wid = f"for-maria-{uuid.uuid4().hex[:6]}"
    sams = bare.model_copy(update={"proof": start_proof(people, "sam", wid, data)})
    assert "'maria' is not who signed the start proof ('sam')" in await outcome(sams, wid)
    # A start proof for another run (or other input) starts nothing here.
    wid = f"for-sam-{uuid.uuid4().hex[:6]}"
    other = AgentRun(
        agent="onboarding", input=data, principal="sam", proof=start_proof(people, "sam", "x", data)
    )
    assert "the start proof: the proof is for another message (run:" in await outcome(other, wid)


async def test_a_run_acts_for_its_starter_and_a_revoked_grant_parks_it_until_granted_again(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People, ledger: Any
) -> None:
    from durable_agents._vocab.schemas import AgentRun
    from durable_agents.client import start_run
    from tests.helpers import hire

    data, wid = hire(), f"alice-{uuid.uuid4().hex[:6]}"
    proof = start_proof(people, "alice", wid, data)
    run = AgentRun(agent="onboarding", input=data, principal="alice", proof=proof)
    handle = await start_run(ts_env.client, run, wid, task_queue)
    await wait_for_status(handle, "waiting_event")
    status = await handle.query(AgentWorkflow.status)
    assert status.principal == "alice"
    notes = [e.text for e in await handle.query(AgentWorkflow.transcript) if e.kind == "note"]
    assert any(n.startswith("acts for alice (proof ") for n in notes), notes
    made = httpx.get(f"{people.base}/ledger", params={"run": wid}).json()["entries"]
    assert {e["principal"] for e in made} == {"alice"} and len(made) == 2

    # alice takes back what she let the agent do: its next effect parks, context intact.
    people.revoke("alice", "onboarding")
    await handle.signal(AgentWorkflow.on_event, EventSignal(name="clearance_granted"))
    await wait_for_status(handle, "waiting_approval")
    await people.decide(handle, "hana", True)
    await wait_for_status(handle, "needs_attention")
    status = await handle.query(AgentWorkflow.status)
    assert "consent_required: alice has granted onboarding nothing" in (status.last_error or "")
    assert f"agentctl resume {wid}" in (status.last_error or "")
    assert ledger(wid, "send_email") == 0

    # Granted again, and resumed by alice herself: the email goes out, once, for alice.
    assert people.grant("alice", "onboarding", ["mail:send"]) == ["mail:send"]
    await handle.signal(AgentWorkflow.resume, people.operator(wid, "resume", "alice"))
    assert (await handle.result()).outcome == "completed"
    assert ledger(wid, "send_email") == 1
    [sent] = [e for e in httpx.get(f"{people.base}/ledger", params={"run": wid}).json()["entries"]
              if e["action"] == "send_email"]  # fmt: skip
    assert sent["principal"] == "alice"
    # The audit names who started it and who resumed it, with their proofs.
    from durable_agents.activities.audit import audit_log

    trail = [r.entry for r in audit_log().trail(wid)]
    [start] = [e for e in trail if e.kind == "start"]
    [resume] = [e for e in trail if e.kind == "operator"]
    for entry, action in ((start, "start"), (resume, "resume")):
        assert (entry.outcome, entry.approver, entry.principal) == (action, "alice", "alice")
        assert entry.details["issuer"] == "urn:durable-agents:sim:idp"
        assert len(entry.details["proof_id"]) == 32
    # Long after they expired, the proofs it keeps still verify as evidence: alice's start,
    # hana's decision and alice's resume, each against the provider's keys and bound to this run.
    verified = agentctl(os.environ | world(people.base), "audit", wid, "--verify")
    assert verified.returncode == 0, verified.stderr
    assert f"{wid}: 3 proof(s) of who started, decided or operated it verified" in verified.stdout


def test_a_person_grants_lists_and_revokes_with_agentctl(sim: Any, people: People) -> None:
    env = people.env("sam")
    assert agentctl(env, "grants", "revoke", "helpdesk").returncode in (0, 1)  # a clean slate
    granted = agentctl(env, "grant", "helpdesk", "--scope", "tickets:write")
    assert granted.returncode == 0, granted.stderr
    assert "helpdesk may now act for you with: tickets:write" in granted.stdout
    listed = agentctl(env, "grants", "--json")
    assert json.loads(listed.stdout)["helpdesk"] == ["tickets:write"]
    beyond = agentctl(env, "grant", "helpdesk", "--scope", "payments:refund")
    assert beyond.returncode == 1 and "helpdesk never asks for payments:refund" in beyond.stderr
    assert agentctl(env, "grants", "revoke", "helpdesk").stdout.startswith("revoked: helpdesk")
    again = agentctl(env, "grants", "revoke", "helpdesk")
    assert again.returncode == 1 and "you had granted helpdesk nothing" in again.stderr
    # Signed in as sam, nobody starts a run as lee.
    as_lee = agentctl(env, "run", "onboarding", "--as", "lee", "--address", "127.0.0.1:1")
    assert as_lee.returncode == 1
    assert "--as 'lee', but this machine is signed in as 'sam'" in as_lee.stderr


async def test_only_an_operator_or_the_runs_own_person_operates_a_parked_run(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People, fault: Any
) -> None:
    fault("model:onboarding", "auth", times=1)
    handle = await start_onboarding(ts_env.client, task_queue)
    await wait_for_status(handle, "needs_attention")
    # mallory signed in, and her proof is valid: she is no operator, so nothing moves.
    await handle.signal(AgentWorkflow.abort, people.operator(handle.id, "abort", "mallory", "x"))
    for _ in range(100):
        status = await handle.query(AgentWorkflow.status)
        if status.refused:
            break
        await asyncio.sleep(0.05)
    assert "'mallory' may not abort this run: only the operators group" in status.refused[-1].reason
    assert status.status == "needs_attention"
    await handle.signal(AgentWorkflow.abort, people.operator(handle.id, "abort", "omar", "done"))
    assert (await handle.result()).outcome == "aborted"


def test_agentctl_login_in_a_browser_with_pkce_and_a_loopback_redirect(
    sim: Any, tmp_path: Path
) -> None:
    env = cli_env(sim, tmp_path)
    proc = subprocess.Popen(
        [*AGENTCTL, "login", "--browser"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split("open ", 1)[1].strip()
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1" in url
    back = approve_authorization(url, "lee", password(sim.db_path.parent, "lee"))
    assert back.status_code == 200 and "Signed in" in back.text  # the CLI's loopback page
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "signed in as lee" in out
    assert json.loads(agentctl(env, "whoami", "--json").stdout)["subject"] == "lee"


def test_the_code_flow_refuses_a_stranger_redirect_a_wrong_verifier_and_a_second_use(
    sim: Any,
) -> None:
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlencode, urlsplit

    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": "agentctl",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "scope": "openid runs",
        "state": "s1",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    authorize = f"{sim.url}/idp/authorize"
    stranger = httpx.get(authorize, params=params | {"redirect_uri": "https://evil.example/cb"})
    assert stranger.status_code == 400 and "loopback" in stranger.text  # no redirect there
    no_pkce = httpx.get(authorize, params={k: v for k, v in params.items() if "code_" not in k})
    assert no_pkce.status_code == 400 and "PKCE is required" in no_pkce.text

    # Signed in and allowed: the redirect carries a code and the state (not followed here).
    with httpx.Client(timeout=10) as browser:
        form = browser.get(f"{authorize}?{urlencode(params)}")
        csrf = form.text.split("name='csrf' value='")[1].split("'")[0]
        ticket = form.text.split("name='request' value='")[1].split("'")[0]
        consent = browser.post(authorize, data={
            "csrf": csrf, "request": ticket, "username": "lee",
            "password": password(sim.db_path.parent, "lee")})  # fmt: skip
        csrf = consent.text.split("name='csrf' value='")[1].split("'")[0]
        redirect = browser.post(f"{authorize}/consent", data={
            "csrf": csrf, "ticket": ticket, "decision": "allow"})  # fmt: skip
    assert redirect.status_code == 303
    back = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert back["state"] == ["s1"]
    token = {"grant_type": "authorization_code", "client_id": "agentctl",
             "code": back["code"][0], "redirect_uri": params["redirect_uri"]}  # fmt: skip
    wrong = httpx.post(f"{sim.url}/idp/token", data=token | {"code_verifier": "w" * 50})
    assert wrong.status_code == 400 and "code_verifier does not match" in wrong.text
    # The code was used by that attempt: a right verifier now gets nothing either.
    again = httpx.post(f"{sim.url}/idp/token", data=token | {"code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_client_cannot_start_a_run_with_a_carried_state_or_a_borrowed_grant(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    from durable_agents._vocab.carried import CarriedState
    from durable_agents._vocab.schemas import AgentRun
    from tests.helpers import hire

    async def refusal(run: AgentRun, wid: str) -> str:
        handle = await ts_env.client.start_workflow(
            AgentWorkflow.run, run, id=wid, task_queue=task_queue
        )
        with pytest.raises(Exception) as info:  # noqa: PT011 - the run fails as InvalidRun
            await handle.result()
        return str(info.value.cause)  # type: ignore[attr-defined]

    forged = AgentRun(agent="onboarding", input=hire(), principal="maria", carried=CarriedState())
    said = await refusal(forged, f"carried-{uuid.uuid4().hex[:6]}")
    assert "carried: only the run itself hands on its state" in said
    # alice's own start proof, but naming another agent's grant: refused.
    wid, data = f"borrow-{uuid.uuid4().hex[:6]}", hire()
    borrowing = AgentRun(agent="onboarding", input=data, principal="alice", granted_to="refund")
    borrowing.proof = start_proof(people, "alice", wid, data)
    said = await refusal(borrowing, wid)
    assert "granted_to: only a sub-agent acts under another agent's grant" in said


async def test_sub_agents_act_for_the_person_who_started_the_root_run(
    ts_env: Any, ts_worker: Any, task_queue: str, people: People
) -> None:
    from durable_agents._vocab.schemas import AgentRun
    from durable_agents.client import start_run

    data = {"question": "What is Temporal?", "topics": ["history", "design"]}
    wid = f"research-{uuid.uuid4().hex[:6]}"
    run = AgentRun(agent="research", input=data, principal="alice")
    run.proof = people.proof("alice", proofs.start(wid, run, []))
    handle = await start_run(ts_env.client, run, wid, task_queue)
    result = await handle.result()
    assert result.outcome == "completed", result.answer
    child = ts_env.client.get_workflow_handle(f"{wid}--call_0_spawn_agent")
    status = await child.query(AgentWorkflow.status)
    assert (status.agent, status.principal) == ("fact_finder", "alice")
    notes = [e.text for e in await child.query(AgentWorkflow.transcript) if e.kind == "note"]
    assert any(n.startswith("acts for alice (proof ") for n in notes), notes


def test_a_refresh_token_used_twice_revokes_its_whole_family(sim: Any, people: People) -> None:
    from tests.people import tokens

    first = tokens(sim.url, sim.db_path.parent, "sam")["refresh_token"]

    def refresh(token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "agentctl"}
        return httpx.post(f"{sim.url}/idp/token", data=form)

    owner = refresh(first)
    assert owner.status_code == 200
    stolen = refresh(first)  # a copy of the used token comes back: someone else has it
    assert stolen.status_code == 400
    # The owner's newer token is revoked with it: both must sign in again.
    assert refresh(owner.json()["refresh_token"]).status_code == 400
