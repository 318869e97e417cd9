"""People signing in at the sim's identity provider, as a test drives it: a person's tokens by
the device sign-in (its pages driven by `sim.person`), a sign-in file for `agentctl`, `agentctl
login` itself, and proofs for ops tools that send a run a message through `temporal`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from sim.person import approve_device, password
from sim.world import world

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def tokens(base: str, state_dir: Path, person: str) -> dict[str, Any]:
    """A person's access and refresh tokens by the device sign-in, driven over HTTP."""
    with httpx.Client(base_url=base, timeout=10) as http:
        start = http.post(
            "/idp/device_authorization", data={"client_id": "agentctl", "scope": "openid runs"}
        ).json()
        done = approve_device(base, start["user_code"], person, password(state_dir, person))
        assert done.status_code == 200, done.text
        answer = http.post(
            "/idp/token",
            data={
                "grant_type": DEVICE_CODE,
                "device_code": start["device_code"],
                "client_id": "agentctl",
            },
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def signin_file(base: str, state_dir: Path, person: str, path: Path) -> Path:
    """A sign-in file for `agentctl` (DURABLE_AGENTS_SIGNIN_FILE) holding `person`'s tokens,
    as `agentctl login` writes it (tests/test_people.py drives the command itself)."""
    got = tokens(base, state_dir, person)
    entry = {
        "provider": f"{base}/idp",
        "issuer": "urn:durable-agents:sim:idp",
        "token_endpoint": f"{base}/idp/token",
        "subject": person,
        "access_token": got["access_token"],
        "refresh_token": got["refresh_token"],
        "expires_at": time.time() + float(got["expires_in"]),
    }
    path.write_text(json.dumps({"default": entry}))
    path.chmod(0o600)
    return path


def proof(base: str, access_token: str, details: dict[str, Any]) -> str:
    """What an ops tool does with curl: exchange a person's access token for a proof."""
    answer = httpx.post(
        f"{base}/idp/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "client_id": "agentctl",
            "subject_token": access_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": "durable-agents",
            "authorization_details": json.dumps([details]),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def login(agentctl: list[str], env: dict[str, str], base: str, state_dir: Path, person: str,
          allow: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`agentctl login` as a subprocess, the person signing in on the pages it names."""
    proc = subprocess.Popen(
        [*agentctl, "login"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    code_line = proc.stdout.readline()
    code = re.search(r"code ([A-Z]+)", code_line)
    assert code, (first, code_line)
    approve_device(base, code.group(1), person, password(state_dir, person), allow)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + code_line + out, err)


class People:
    """The sim world's people, signed in once each for a test session: their tokens, a sign-in
    file per person for `agentctl`, and proofs for messages sent with the Temporal client or
    the `temporal` CLI (as an ops tool would)."""

    # The people of the sim the running test uses (set by an autouse fixture in conftest).
    current: People | None = None
    _made: dict[str, People] = {}

    def __init__(self, base: str, state_dir: Path, files: Path) -> None:
        self.base, self.state_dir, self.files = base, state_dir, files
        self._tokens: dict[str, dict[str, Any]] = {}

    @classmethod
    def of(cls, base: str, state_dir: Path, tmp: Any) -> People:
        """One per sim for the session (tokens are kept: signing in costs a few requests)."""
        if base not in cls._made:
            cls._made[base] = cls(base, state_dir, tmp.mktemp("people"))
        return cls._made[base]

    def access_token(self, person: str) -> str:
        got = self._tokens.get(person)
        if got is None or got["expires_at"] - 60 < time.time():
            got = tokens(self.base, self.state_dir, person)
            got["expires_at"] = time.time() + float(got["expires_in"])
            self._tokens[person] = got
        return str(got["access_token"])

    def proof(self, person: str, details: dict[str, Any]) -> str:
        return proof(self.base, self.access_token(person), details)

    def grant(self, person: str, agent: str, scopes: list[str]) -> list[str]:
        """`agentctl grant AGENT --scope …` as `person`, through the provider's API."""
        answer = httpx.post(
            f"{self.base}/idp/grants",
            json={"agent": agent, "scopes": scopes},
            headers={"Authorization": f"Bearer {self.access_token(person)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["scopes"])

    def revoke(self, person: str, agent: str) -> None:
        answer = httpx.post(
            f"{self.base}/idp/grants/revoke",
            json={"agent": agent},
            headers={"Authorization": f"Bearer {self.access_token(person)}"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["revoked"], answer.text

    def signin_file(self, person: str) -> Path:
        path = self.files / f"signin-{person}.json"
        if not path.exists():
            signin_file(self.base, self.state_dir, person, path)
        return path

    def env(self, person: str, env: dict[str, str] | None = None) -> dict[str, str]:
        """`env` (default: this process's) with `agentctl` signed in as `person`."""
        import os

        return dict(env if env is not None else os.environ) | {
            "DURABLE_AGENTS_SIGNIN_FILE": str(self.signin_file(person)),
            **world(self.base),
        }

    def decision(self, run: str, approval: Any, person: str, approve: bool, reason: str = "",
                 **fields: Any) -> Any:  # fmt: skip
        """A Decision on `approval` (from the run's status) by `person`, with their proof."""
        from durable_agents._vocab import proofs
        from durable_agents._vocab.schemas import Decision

        details = proofs.decision(run, approval.id, approve, approval.digest, reason)
        return Decision(
            approve=approve,
            approval_id=approval.id,
            reason=reason,
            proof=self.proof(person, details),
            **fields,
        )

    def operator(self, run: str, action: str, person: str, reason: str = "") -> Any:
        """An OperatorRequest or AbortRequest by `person`, with their proof."""
        from durable_agents._vocab import proofs
        from durable_agents._vocab.schemas import AbortRequest, OperatorRequest

        model = AbortRequest if action == "abort" else OperatorRequest
        proof_ = self.proof(person, proofs.operator(run, action, reason))
        return model(reason=reason, proof=proof_)

    async def decide(self, handle: Any, person: str, approve: bool, reason: str = "",
                     approval_id: str | None = None, digest: str | None = None,
                     signal: str | None = None, approver: str | None = None,
                     arguments: dict[str, Any] | None = None,
                     proven_arguments: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """Decide as `person` with their proof, as `agentctl approve` does: the approval named
        (or the only pending one, or the latest) with the digest the run shows. Through the
        `decide` update (its result), or the `approve`/`reject` signal when `signal` names it.
        `arguments`: edit then approve; the proof names `proven_arguments`' digest if given (a
        forgery), else theirs."""
        from durable_agents._vocab import proofs
        from durable_agents._vocab.schemas import Approval, Decision
        from durable_agents.workflows.agent import AgentWorkflow

        if approval_id is not None and digest is not None:  # what was read: no need to ask
            target, shown = approval_id, digest
        else:
            status = await handle.query(AgentWorkflow.status)
            known = [a for a in status.approvals if approval_id in (None, a.id)]
            pending = [a for a in known if a.state == "pending"]
            chosen = pending[0] if len(pending) == 1 else (known[-1] if known else None)
            shown = chosen.digest if chosen is not None else "0" * 16
            target = approval_id or (chosen.id if chosen is not None else "apr-1")
        named = proven_arguments if proven_arguments is not None else arguments
        edited = None if named is None else proofs.arguments_digest(named)
        details = proofs.decision(handle.id, target, approve, shown, reason, edited)
        decision = Decision(
            approve=approve,
            approval_id=approval_id,
            reason=reason,
            digest=digest,
            approver=approver,
            proof=self.proof(person, details),
            arguments=arguments,
        )
        if signal is not None:
            await handle.signal(signal, decision)
            return None
        return await handle.execute_update("decide", decision, result_type=Approval)


# `agentctl` commands that send a person's message into a run, and so need them signed in.
PERSON_COMMANDS = frozenset(
    {"run", "approve", "reject", "message", "resume", "retry-turn", "abort", "grant", "grants"}
)


def signed_in_env(args: tuple[str, ...] | list[str], env: dict[str, str] | None) -> dict[str, str]:
    """For a test's `agentctl` command that says `--as PERSON`: `env` with that person signed
    in (the command then asks the provider for their proof, as it would for them)."""
    args = list(args)
    if not args or args[0] not in PERSON_COMMANDS or "--as" not in args or People.current is None:
        return dict(env or {})
    person = args[args.index("--as") + 1].strip().lower()
    if person not in tomllib.loads((People.current.state_dir / "people.toml").read_text()):
        return dict(env or {})  # nobody to sign in as: the command refuses the name
    return dict(env or {}) | {
        "DURABLE_AGENTS_SIGNIN_FILE": str(People.current.signin_file(person)),
        **world(People.current.base),
    }


def operator(run: str, action: str, person: str, reason: str = "") -> Any:
    """An operator's request (`resume`, `retry_turn`, `abort`) by `person`, with their proof,
    from the sim of the running test."""
    assert People.current is not None, "the test needs the sim: its people sign in there"
    return People.current.operator(run, action, person, reason)


async def decide(handle: Any, person: str, approve: bool, reason: str = "", **fields: Any) -> Any:
    """`People.decide` with the sim of the running test."""
    assert People.current is not None, "the test needs the sim: its people sign in there"
    return await People.current.decide(handle, person, approve, reason, **fields)


async def start_run(client: Any, run: Any, workflow_id: str | None = None,
                    task_queue: str | None = None) -> Any:  # fmt: skip
    """`ops.start_run`, with the start proof of the person the run acts for (as `agentctl
    run` sends it) unless it acts for a service principal, as code's runs do."""
    from durable_agents import _ops as ops
    from durable_agents._directory import normalize
    from durable_agents._vocab import proofs

    wid = workflow_id or ops.new_run_id(run.agent)
    person = normalize(run.principal)
    if People.current is not None and person not in ops.catalog().directory.services:
        scopes = sorted(set(run.scopes or ops.spec(run.agent).scopes()))
        details = proofs.start(wid, run, scopes)
        run = run.model_copy(update={"proof": People.current.proof(person, details),
                                     "scopes": scopes})  # fmt: skip
    return await ops.start_run(client, run, wid, task_queue)
