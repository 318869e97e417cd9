"""Agents with identities the systems check: tokens from the sim's identity provider by token
exchange, and the attacks a system must refuse (forged, expired, for another system, too
narrow, replayed on another call), at the system's door and inside runs."""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import BaseModel
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from durable_agents import AgentSet, AgentSpec, ToolContext, tool
from durable_agents._discovery import discover
from durable_agents._vocab import failures as f
from durable_agents._vocab.schemas import Identity, ToolRequest
from durable_agents.activities.identity import TokenBroker
from durable_agents.activities.tools import ToolRunner
from durable_agents.testing import AgentEnvironment, Message, Reply, ScriptedModel, call, results
from durable_agents.workflows.agent import AgentWorkflow
from sim.agents._http import post
from sim.idp import ADMIN_FILE
from tests.helpers import sim_token

MAILBOX = {"employee_id": "E-tok", "full_name": "Tok En"}


def bearer(token: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


def token(sim: Any, audience: str = "hr", scope: str = "hr:write", **kw: Any) -> str:
    return sim_token(sim.url, sim.credentials, "onboarding", audience, scope, **kw)


def forged(sim: Any) -> str:
    """A token with every claim right, signed by a key that is not the provider's."""
    claims = jwt.decode(token(sim), sim.app.state.idp._verify_keys).claims
    kid = sim.app.state.idp.jwks["keys"][0]["kid"]
    mine = RSAKey.generate_key(2048, parameters={"kid": kid})
    return jwt.encode({"alg": "RS256", "kid": kid}, claims, mine)


@pytest.fixture
def short_lived(sim: Any) -> Iterator[None]:
    """The provider issues tokens that have already expired."""
    idp = sim.app.state.idp
    idp.lifetime_s = -60
    yield
    idp.lifetime_s = 300


def admin(sim: Any) -> dict[str, str]:
    """The sim's identity provider's admin credential, as an operator of the provider has it."""
    secret = (sim.db_path.parent / ADMIN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {secret}"}


def key() -> str:
    return f"tok-{uuid.uuid4().hex[:8]}/call_1"


def test_a_system_takes_only_a_valid_token_for_itself_with_the_scope(sim: Any) -> None:
    with httpx.Client(base_url=sim.url) as http:
        k = key()
        none = http.post("/hr/mailboxes", json=MAILBOX, headers={"Idempotency-Key": k})
        assert none.status_code == 401 and "bearer token is required" in none.text
        assert none.headers["www-authenticate"].startswith("Bearer")
        fake = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer(forged(sim), k))
        assert fake.status_code == 401 and "bad_signature" in fake.text
        garbage = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer("not-a-jwt", k))
        assert garbage.status_code == 401
        elsewhere = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer(token(sim, "it"), k))
        assert elsewhere.status_code == 401 and "'aud'" in elsewhere.text
        narrow = http.post(
            "/hr/mailboxes", json=MAILBOX, headers=bearer(token(sim, "hr", "it:write"), k)
        )
        assert narrow.status_code == 403 and "not hr:write" in narrow.text
        assert 'error="insufficient_scope"' in narrow.headers["www-authenticate"]
        assert http.get("/ledger", params={"run": k.split("/")[0]}).json()["entries"] == []

        good = token(sim, token_id=k)
        made = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer(good, k))
        assert made.status_code == 201, made.text
        again = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer(good, k))
        assert again.headers["idempotent-replayed"] == "true"  # a retry of the same call
        # The same token on another call: refused, nothing made.
        other = key()
        replayed = http.post("/hr/mailboxes", json=MAILBOX, headers=bearer(good, other))
        assert replayed.status_code == 401 and "already used for another call" in replayed.text
        [entry] = http.get("/ledger", params={"run": k.split("/")[0]}).json()["entries"]
        assert http.get("/ledger", params={"run": other.split("/")[0]}).json()["entries"] == []
    assert (entry["agent"], entry["principal"], entry["scope"]) == (
        "onboarding",
        "tester",
        "hr:write",
    )
    assert entry["token_id"] == k


def test_an_expired_token_is_refused(sim: Any, short_lived: None) -> None:
    stale = token(sim)
    answer = httpx.post(f"{sim.url}/hr/mailboxes", json=MAILBOX, headers=bearer(stale, key()))
    assert answer.status_code == 401 and "token is expired" in answer.text


def test_the_provider_refuses_bad_credentials_and_scopes_beyond_the_client(sim: Any) -> None:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requested_subject": "tester",
        "audience": "payments",
        "scope": "payments:refund",
    }
    client = tomllib.loads(sim.credentials.read_text())["onboarding"]
    wrong = httpx.post(f"{sim.url}/idp/token", data=form, auth=(client["client_id"], "guess"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    beyond = httpx.post(
        f"{sim.url}/idp/token", data=form, auth=(client["client_id"], client["client_secret"])
    )
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"
    discovery = httpx.get(f"{sim.url}/idp/.well-known/openid-configuration").json()
    assert discovery["jwks_uri"].endswith("/idp/jwks")
    # One key, or more after a rotation (tests/test_people.py rotates the session's sim's):
    # every one public parts only.
    keys = httpx.get(discovery["jwks_uri"]).json()["keys"]
    assert keys and all("d" not in jwk and "p" not in jwk for jwk in keys)


def request(run: str, scopes: list[str], agent: str = "onboarding") -> ToolRequest:
    identity = Identity(
        agent=agent, agent_version="1", workflow_id=run, principal="hana", scopes=scopes
    )
    return ToolRequest(
        tool="order_laptop",
        arguments={"employee_id": "E1", "ship_to": "1 Main St"},
        idempotency_key=f"{run}/call_1",
        identity=identity,
    )


async def test_a_call_gets_a_token_once_and_a_call_without_the_scope_gets_none(
    sim: Any, people: Any
) -> None:
    people.grant("hana", "onboarding", ["it:write"])  # hana lets the agent order for her
    runner = ToolRunner(discover())
    run = f"tokens-{uuid.uuid4().hex[:6]}"
    for _ in range(2):  # a retried attempt presents the token its call already has
        await ActivityEnvironment().run(runner.run_tool, request(run, ["it:write"]))
    assert runner.tokens.obtained == 1
    [issued] = httpx.get(f"{sim.url}/idp/issued", params={"run": run}).json()["issued"]
    assert (issued["subject"], issued["audience"], issued["scope"]) == ("hana", "it", "it:write")
    assert issued["jti"] == f"{run}/call_1" and issued["client_id"] == "agent-onboarding"

    refused = f"tokens-{uuid.uuid4().hex[:6]}"
    with pytest.raises(Exception) as info:
        await ActivityEnvironment().run(runner.run_tool, request(refused, ["hr:write"]))
    assert f.PERMISSION_DENIED in repr(info.value)
    assert httpx.get(f"{sim.url}/idp/issued", params={"run": refused}).json()["issued"] == []
    assert runner.tokens.obtained == 1


async def test_an_agent_without_credentials_is_refused_with_what_to_do(sim: Any) -> None:
    with pytest.raises(Exception) as info:
        await TokenBroker().token(request("r", ["it:write"], agent="stranger"), "it", ("it:write",))
    assert f.AUTHENTICATION_FAILED in repr(info.value)
    assert "agent stranger (version 1) has no credentials" in str(info.value)
    assert "DURABLE_AGENTS_CREDENTIALS_FILE" in str(info.value)


# -- inside runs: each refusal becomes its taxonomy type, with that type's strategy ------------


class Box(BaseModel):
    employee_id: str
    full_name: str


class Made(BaseModel):
    mailbox_id: str
    address: str


@tool(side_effect="reversible", scopes=("hr:write",), audience="hr")
async def open_box(args: Box, ctx: ToolContext) -> Made:
    """Open a mailbox, with the call's own token."""
    return Made.model_validate(await post("/hr/mailboxes", args, ctx))


@tool(side_effect="reversible", scopes=("it:write",), audience="it")
async def box_via_it(args: Box, ctx: ToolContext) -> Made:
    """Open a mailbox with a token meant for the IT system."""
    return Made.model_validate(await post("/hr/mailboxes", args, ctx))


@tool(side_effect="reversible", scopes=("hr:read",), audience="hr")
async def box_read_only(args: Box, ctx: ToolContext) -> Made:
    """Open a mailbox with a token that only grants reading."""
    return Made.model_validate(await post("/hr/mailboxes", args, ctx))


FORGER: dict[str, str] = {}  # the forged token the next call presents


@tool(side_effect="reversible", scopes=("hr:write",), audience="hr")
async def box_forged(args: Box, ctx: ToolContext) -> Made:
    """Open a mailbox with a token the identity provider never signed."""
    fake = dataclasses.replace(ctx, token=FORGER["token"])
    return Made.model_validate(await post("/hr/mailboxes", args, fake))


TOOLS = (open_box, box_via_it, box_read_only, box_forged)


class Request(BaseModel):
    request: str


def agent(one: Any) -> AgentSpec:
    return AgentSpec(
        name=f"badge_{one.name}",
        version="1",
        description="Opens a mailbox.",
        system_prompt="Open the mailbox.",
        model_route=(f"scripted:badge_{one.name}",),
        tools=(one,),
        input_model=Request,
    )


def scripted(spec: AgentSpec) -> ScriptedModel:
    name = spec.tools[0].name

    def script(messages: list[Message]) -> Reply:
        done = results(messages, name)
        return f"said: {done[-1]}" if done else call(name, **MAILBOX)

    return ScriptedModel(spec.name, script)


SPECS = [agent(t) for t in TOOLS]
REGISTERED: dict[tuple[str, str], dict[str, str]] = {}


@pytest.fixture
def badge_clients(sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A client at the sim's provider for each test agent, in the worker's credentials file."""
    lines = []
    for spec in SPECS:
        body = {
            "agent": spec.name,
            "scopes": ["hr:write", "it:write", "hr:read"],
            "audiences": ["hr", "it"],
        }
        # A client is registered once (the provider re-keys none): once per sim, then kept.
        made = REGISTERED.get((sim.url, spec.name))
        if made is None:
            made = httpx.post(f"{sim.url}/idp/clients", json=body, headers=admin(sim)).json()
            REGISTERED[(sim.url, spec.name)] = made
        lines += [f"[{spec.name}]", f'client_id = "{made["client_id"]}"']
        secret = tmp_path / f"{spec.name}.secret"  # the secret in a file of its own
        secret.write_text(made["client_secret"] + "\n")
        lines.append(f'client_secret_file = "{secret}"')
    path = tmp_path / "credentials.toml"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DURABLE_AGENTS_CREDENTIALS_FILE", str(path))
    yield path
    monkeypatch.undo()


async def outcome(handle: WorkflowHandle[Any, Any]) -> tuple[str, str]:
    """(status, what the run says) once the run ends or parks."""
    for _ in range(300):
        status = await handle.query(AgentWorkflow.status)
        if status.status == "completed":
            return "completed", (await handle.result()).answer
        if status.status in ("needs_attention", "failed"):
            return status.status, status.last_error or ""
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run neither ended nor parked: {status.status}")


async def test_refused_tokens_inside_runs_get_their_taxonomy_types(
    sim: Any, ts_env: WorkflowEnvironment, badge_clients: Path
) -> None:
    FORGER["token"] = forged(sim)
    env = AgentEnvironment(AgentSet(tuple(SPECS)), models=[scripted(s) for s in SPECS], env=ts_env)
    async with env as agents:
        runs = {s.tools[0].name: await agents.start(s.name, {"request": "go"}) for s in SPECS}
        got = {name: await outcome(handle) for name, handle in runs.items()}
    assert got["open_box"][0] == "completed" and "mailbox_id" in got["open_box"][1]
    # Not a valid token for the system: the run parks for an operator (AuthenticationFailed).
    for name in ("box_via_it", "box_forged"):
        status, error = got[name]
        assert status == "needs_attention" and f.AUTHENTICATION_FAILED in error, got[name]
        assert "HTTP 401" in error
    # A valid token without the scope: PermissionDenied, told to the model, which answers.
    status, answer = got["box_read_only"]
    assert status == "completed" and "403" in answer and "not hr:write" in answer
    made = httpx.get(f"{sim.url}/ledger", params={"action": "create_mailbox"}).json()["entries"]
    mine = [e for e in made if e["idempotency_key"].split("/")[0] in {h.id for h in runs.values()}]
    assert [e["agent"] for e in mine] == ["badge_open_box"]


async def test_an_expired_token_parks_the_run_and_resume_gets_a_new_one(
    sim: Any, ts_env: WorkflowEnvironment, badge_clients: Path, short_lived: None
) -> None:
    [spec] = [s for s in SPECS if s.tools[0].name == "open_box"]
    async with AgentEnvironment(AgentSet((spec,)), models=[scripted(spec)], env=ts_env) as agents:
        handle = await agents.start(spec.name, {"request": "go"})
        status, error = await outcome(handle)
        assert status == "needs_attention" and f.AUTHENTICATION_FAILED in error
        assert "token is expired" in error
        # The operator has the provider fixed and resumes: the call asks for a new token (the
        # refused one was dropped) and is made, once.
        sim.app.state.idp.lifetime_s = 300
        await agents.operate(handle, "resume", "operator")
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome == "completed" and "mailbox_id" in result.answer
    made = httpx.get(f"{sim.url}/ledger", params={"run": handle.id}).json()["entries"]
    assert [(e["action"], e["agent"]) for e in made] == [("create_mailbox", spec.name)]


def test_agentctl_agents_says_which_tools_get_tokens_for_which_system() -> None:
    from tests.test_cli import invoke, ok

    shown = ok(invoke("agents", "onboarding", "--offline")).stdout
    assert "create_mailbox (reversible; hr:write; token for hr)" in shown
    assert "wait_for_event (read_only)" in shown


async def test_a_provider_that_does_not_answer_is_transient_and_bad_credentials_say_why(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from temporalio.exceptions import ApplicationError

    from sim.runner import free_port

    want = request("r-1", ["it:write"])
    monkeypatch.setenv("DURABLE_AGENTS_IDP_TOKEN_URL", f"http://127.0.0.1:{free_port()}/token")
    try:
        with pytest.raises(ApplicationError) as down:
            await TokenBroker().token(want, "it", ("it:write",))
        assert down.value.type == f.TOOL_TRANSIENT and not down.value.non_retryable

        # No token endpoint at all: the run parks, saying which setting names it.
        monkeypatch.delenv("DURABLE_AGENTS_IDP_TOKEN_URL")
        with pytest.raises(ApplicationError) as unnamed:
            await TokenBroker().token(want, "it", ("it:write",))
        assert unnamed.value.type == f.AUTHENTICATION_FAILED and unnamed.value.non_retryable
        assert "set DURABLE_AGENTS_IDP_TOKEN_URL" in unnamed.value.message

        monkeypatch.setenv("DURABLE_AGENTS_IDP_TOKEN_URL", f"{sim.url}/idp/token")
        path = tmp_path / "credentials.toml"
        both = 'client_secret = "TOPSECRET"\nclient_secret_file = "/x"\n'
        path.write_text('[onboarding]\nclient_id = "agent-onboarding"\n' + both)
        monkeypatch.setenv("DURABLE_AGENTS_CREDENTIALS_FILE", str(path))
        with pytest.raises(ApplicationError) as bad:
            await TokenBroker().token(want, "it", ("it:write",))
        assert bad.value.type == f.AUTHENTICATION_FAILED and bad.value.non_retryable
        assert "exactly one of client_secret and client_secret_file" in bad.value.message
        assert "TOPSECRET" not in bad.value.message

        path.write_text('[onboarding]\nclient_id = "agent-onboarding"\nclient_secret = "guess"\n')
        with pytest.raises(ApplicationError) as wrong:  # the file is read again when it changes
            await TokenBroker().token(want, "it", ("it:write",))
        assert wrong.value.type == f.AUTHENTICATION_FAILED and "invalid_client" in str(wrong.value)
    finally:
        monkeypatch.undo()
