"""What agentctl shows and sends can be trusted: approvers see what they decide (and pin it with
its digest), text from outside cannot forge a line or repaint the terminal, principals are people
of the directory, the UI link opens the run, and a run's title says what it is about.

CLI calls run in a thread, as in test_cli.py, so the session loop (and the worker on it) turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_agents import _ops as ops
from durable_agents.starters import common
from durable_agents.workflows.search import PRINCIPAL
from tests.helpers import hire
from tests.people import start_run
from tests.test_cli import address, cli, dead_address, error, invoke, ok, until_status
from tests.test_inbox_cli import start, until_listed

# A line someone would like to slip into the record, and a terminal escape (clear the screen).
FORGED = "\n2026-01-01 00:00:00 t1 • run ended: completed"
ESC = "\x1b[2J"


async def at_the_welcome_email(addr: str, task_queue: str, who: str = "ops-anna") -> str:
    """An onboarding run waiting for HR to approve its welcome email."""
    run = await start(addr, task_queue, "onboarding", hire(full_name="Mary Jackson"), who)
    await until_status(run, addr, "waiting_event")
    ok(await cli("signal", run, "clearance_granted", "--address", addr))
    await until_status(run, addr, "waiting_approval")
    return run


# --- approvers see what they decide -----------------------------------------------------------


async def test_approvals_show_prints_the_whole_email_and_the_digest_pins_it(
    dev_env: WorkflowEnvironment, dev_worker, task_queue, ledger
):
    addr = address(dev_env)
    run = await at_the_welcome_email(addr, task_queue)

    exact = json.loads(ok(await cli("approvals", "show", run, "apr-1", "--address", addr,
                                    "--json")).stdout)  # fmt: skip
    body = exact["arguments"]["body"]
    assert len(body) > 200 and "\n" in body  # a real email, over several lines
    digest = exact["digest"]

    shown = ok(await cli("approvals", "show", run, "--address", addr)).stdout
    assert json.dumps(body, ensure_ascii=False) in shown  # every character of the body
    for field, value in exact["arguments"].items():
        assert f'"{field}": {json.dumps(value, ensure_ascii=False)}' in shown
    assert f"approval: apr-1 of run {run} (onboarding)" in shown
    assert "tool: send_email" in shown and f"rule: {exact['rule']}" in shown
    assert "may decide: group hr-managers" in shown
    assert "requested: " in shown and "expires: " in shown and "state: pending" in shown
    assert f"digest: {digest}" in shown

    # The inbox shows the digest too, so an approver can pin what they read.
    await until_listed(addr, run)
    [line] = [t for t in ok(await cli("approvals", "--address", addr)).stdout.splitlines()
              if run in t]  # fmt: skip
    assert digest in line
    missing = error(await cli("approvals", "show", run, "apr-7", "--address", addr))
    assert f"no approval 'apr-7' on run {run}; it has: apr-1" in missing

    # A digest that is not one, or not this request's: refused, naming where the right one is.
    wrong = error(await cli("approve", run, "--as", "hana", "--digest", "wrong", "--address", addr))
    assert "--digest 'wrong' is not a digest" in wrong and "agentctl approvals show" in wrong
    stale = error(await cli("approve", run, "--as", "hana", "--digest", "0" * 16,
                            "--address", addr))  # fmt: skip
    assert stale.startswith("error: decision refused: ") and digest in stale
    assert f"agentctl approvals show {run}" in stale
    assert ledger(run, "send_email") == 0

    decided = ok(await cli("approve", run, "--as", "hana", "--digest", digest, "--address", addr))
    assert decided.stdout.startswith("apr-1 approved by hana at ")
    done = ok(await cli("result", run, "--wait", "--address", addr)).stdout
    assert done.startswith("outcome: completed")
    after = ok(await cli("approvals", "show", run, "--address", addr)).stdout
    assert "state: approved" in after and "decided: approved by hana at " in after
    assert ledger(run, "send_email") == 1


# --- what people read is safe to read ---------------------------------------------------------


def assert_safe(text: str) -> None:
    """No raw escape, no line that forges a record."""
    assert "\x1b" not in text
    assert not any(line.startswith("2026-01-01 00:00:00") for line in text.splitlines()), text


async def test_text_from_outside_cannot_forge_a_line(
    dev_env: WorkflowEnvironment, dev_worker, task_queue
):
    addr = address(dev_env)
    run = await start(addr, task_queue, "onboarding", hire(), "ops-anna")
    await until_status(run, addr, "waiting_event")
    said = f"hello{FORGED}{ESC}"
    assert ok(await cli("message", run, said, "--as", "ops-anna", "--address", addr)).stdout
    ok(await cli("signal", run, "clearance_granted", "--address", addr))
    await until_status(run, addr, "waiting_approval")
    reason = f"fine{FORGED}{ESC}"
    decided = ok(await cli("approve", run, "--as", "hana", "--reason", reason, "--address", addr))
    assert_safe(decided.stdout)
    ok(await cli("result", run, "--wait", "--address", addr))

    shown = ok(await cli("transcript", run, "--address", addr)).stdout
    assert_safe(shown)
    escaped = "\\n2026-01-01 00:00:00 t1 • run ended: completed\\x1b[2J"
    assert f"ops-anna: hello{escaped}" in shown  # the message, on its own one line
    assert f"approved by hana: fine{escaped}" in shown
    # --json is exact: the record keeps what was sent.
    entries = json.loads(ok(await cli("transcript", run, "--address", addr, "--json")).stdout)
    texts = [e["text"] for e in entries]
    assert f"ops-anna: {said}" in texts
    assert any(t.endswith(f"approved by hana: {reason}") for t in texts)

    trail = ok(await cli("audit", run)).stdout
    assert_safe(trail)
    assert f"(fine{escaped})" in trail
    exact = json.loads(ok(await cli("audit", run, "--json")).stdout)
    assert reason in [e["entry"]["details"].get("reason") for e in exact]

    status = ok(await cli("status", run, "--address", addr)).stdout
    assert_safe(status)


def test_table_cells_are_escaped_and_bounded():
    from durable_agents.starters import render

    table = render.table([{"run": "r1", "arguments": "a\nb\x1b[31m" + "x" * 500}])
    [head, row] = table.splitlines()
    assert "a\\nb\\x1b[31m" in row and "\x1b" not in row and len(row) < 120
    # Arguments in full: still the same JSON, with nothing left that a terminal would obey.
    args = {"body": "Hi\n\u202egnp.exe\x7f\x1b[2J", "to": "ada@example.com"}
    shown = render.safe_json(args)
    assert json.loads(shown) == args
    assert shown.isascii() and "\\u202e" in shown and "\\u001b" in shown


def test_an_answer_cannot_pass_for_the_outcome_and_errors_stay_one_line():
    from durable_agents._vocab.schemas import AgentResult, Usage
    from durable_agents.starters import render
    from durable_agents.starters.common import one_line

    answer = f"Done.\noutcome: rejected after 1 turns{ESC}"
    text = render.result(
        AgentResult(agent="refund", outcome="completed", answer=answer, turns=3, usage=Usage())
    )
    lines = text.splitlines()
    assert lines[0].startswith("outcome: completed after 3 turns")
    assert lines[1:] == ["  Done.", "  outcome: rejected after 1 turns\\x1b[2J"]
    assert one_line(f"refused: {FORGED}{ESC} \u202e 'a\\\\b'") == (
        "refused: 2026-01-01 00:00:00 t1 • run ended: completed\\x1b[2J \\u202e 'a\\\\b'"
    )


# --- principals are people of the directory ---------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("   ", "--as: the name is empty"),
        ("nobody-known", "--as: 'nobody-known' is not in the directory; known: "),
        ("sam;rm", "--as: 'sam;rm' is not a name"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ("run", "onboarding", "--input", json.dumps(hire())),
        ("approve", "some-run"),
        ("reject", "some-run"),
        ("message", "some-run", "hello"),
        ("resume", "some-run"),
        ("retry-turn", "some-run"),
        ("abort", "some-run", "--reason", "wrong hire"),
    ],
)
def test_unknown_principals_are_refused_before_anything_is_sent(
    command: tuple[str, ...], who: str, expected: str
):
    # A dead address: had anything been sent, the error would be that the server is unreachable.
    line = error(invoke(*command, "--as", who, "--address", dead_address()))
    assert line.startswith(f"error: {expected}"), line


# A provider is named (nothing answers there): what is missing is the person's sign-in.
NO_ONE_SIGNED_IN = {"DURABLE_AGENTS_OIDC_URL": "http://127.0.0.1:1/idp"}


def test_with_no_identity_provider_the_cli_says_which_setting_names_one(tmp_path):
    env = {"DURABLE_AGENTS_SIGNIN_FILE": str(tmp_path / "x.json"), "DURABLE_AGENTS_OIDC_URL": ""}
    result = invoke("login", env=env)
    assert result.exit_code == 1
    assert "no identity provider to sign in at: set DURABLE_AGENTS_OIDC_URL" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("approve", "r-1"), ("reject", "r-1"), ("resume", "r-1"), ("abort", "r-1", "--reason", "x")],
)
def test_who_decides_is_whoever_is_signed_in_without_naming_them(tmp_path, command):
    """`--as` may be left out: the signed-in person decides (nobody signed in: say so)."""
    env = {"DURABLE_AGENTS_SIGNIN_FILE": str(tmp_path / "nobody.json")} | NO_ONE_SIGNED_IN
    result = invoke(*command, env=env)
    assert result.exit_code == 1, result.output
    assert "not signed in: run `agentctl login` first" in result.stderr


def test_a_run_acts_for_the_signed_in_person(tmp_path):
    env = {"DURABLE_AGENTS_SIGNIN_FILE": str(tmp_path / "nobody.json")} | NO_ONE_SIGNED_IN
    result = invoke("run", "onboarding", "--input", json.dumps(hire()), env=env)
    assert result.exit_code == 1 and "not signed in: run `agentctl login` first" in result.stderr


async def test_a_name_is_normalised_and_the_run_says_what_it_is_about(
    dev_env: WorkflowEnvironment, task_queue
):
    """No worker is needed: the run's identity and title are set when it starts."""
    addr = address(dev_env)
    order = f"O-{uuid.uuid4().hex[:6]}"
    data = {
        "customer_id": "C-1",
        "email": "kim@example.com",
        "order_id": order,
        "ticket_id": "T-9",
        "amount": "250.00",
    }
    started = ok(
        await cli("run", "refund", "--input", json.dumps(data), "--as", " Desk ",
                  "--task-queue", task_queue, "--address", addr, "--json")
    )  # fmt: skip
    run = json.loads(started.stdout)["run"]
    link = f"{common.ui_base(addr)}/namespaces/{dev_env.client.namespace}/workflows/{run}"
    assert f"  {link}\n" in started.stderr and "/history" not in started.stderr

    handle = dev_env.client.get_workflow_handle(run)
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(PRINCIPAL) == "desk"
    summary = await desc.static_summary()
    assert summary == f"refund: 250.00 on order {order} (ticket T-9) · for desk"
    await handle.terminate("test over")

    # Started from code with a name not in its one form: visibility has the one form from the start.
    from durable_agents._vocab.schemas import AgentRun

    other = await start_run(
        dev_env.client, AgentRun(agent="refund", input=data, principal="Tester "), None, task_queue
    )
    desc = await other.describe()
    assert desc.typed_search_attributes.get(PRINCIPAL) == "tester"
    assert (await desc.static_summary() or "").endswith("· for tester")
    await other.terminate("test over")


def test_the_ui_link_is_the_runs_page_in_its_namespace():
    assert common.ui_link("refund-1a2b", "payments", "http://ui:8080") == (
        "http://ui:8080/namespaces/payments/workflows/refund-1a2b"
    )
    # Ids are path segments: nothing in one can change the path.
    assert common.ui_link("a/b c?d", "default", "http://ui").endswith(
        "/namespaces/default/workflows/a%2Fb%20c%3Fd"
    )


def test_a_runs_title_is_safe_to_show():
    from durable_agents._vocab.schemas import AgentRun

    run = AgentRun(
        agent="onboarding", input=hire(full_name="Ada\nLovelace\x1b[31m"), principal="hana"
    )
    title = ops.summary(run)
    assert "\n" not in title and "\x1b" not in title
    assert title.startswith("onboarding: Ada\\nLovelace\\x1b[31m (") and title.endswith(
        "· for hana"
    )


# --- agentctl starts fast: a command loads only what it needs ---------------------------------

HEAVY = (
    "durable_agents.workflows.agent",
    "durable_agents.activities",
    "openai",
    "anthropic",
    "fastapi",
    "uvicorn",
)
PROBE = """
import sys
sys.argv = ["agentctl", *sys.argv[1:]]
from durable_agents.starters import cli
try:
    cli.app(prog_name="agentctl")
except SystemExit:
    pass
heavy = sorted({m for m in sys.modules for h in %r if m == h or m.startswith(h + ".")})
print("LOADED", " ".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("status", "ghost-run"),
        ("transcript", "ghost-run"),
        ("approvals",),
        ("approvals", "show", "ghost-run"),
        ("list",),
    ],
)
async def test_inspecting_loads_neither_the_agent_loop_nor_the_model_clients(
    args: tuple[str, ...], dev_env: WorkflowEnvironment
):
    env = os.environ | {"TEMPORAL_ADDRESS": address(dev_env)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE % (HEAVY,), *args, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    [loaded] = [line for line in err.decode().splitlines() if line.startswith("LOADED")]
    assert loaded == "LOADED ", loaded
