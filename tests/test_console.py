"""The approvers' console in a real browser (Debian's Chromium, driven by Playwright): hana signs
in at the sim's identity provider, finds the request in her inbox, reads the whole email,
approves with the keyboard alone, and watches the run finish live on its page; mallory, who may
not decide, sees no button, and a POST she forges is refused, with or without a CSRF token.
Screenshots of the inbox, the approval and the run go to .state/screenshots/ (README)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from temporalio.testing import WorkflowEnvironment

from durable_agents._vocab.schemas import AgentRun
from durable_agents.client import AgentClient, start_run
from durable_agents.settings import Settings
from durable_agents.starters.console import CSP, create_app
from durable_agents.starters.devserver import free_port
from sim.person import password
from tests.helpers import hire, wait_for_status

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / ".state" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def console_app(dev_env: WorkflowEnvironment, sim: Any) -> AsyncIterator[tuple[str, Any]]:
    """The console on a free loopback port: its address, and the app (its sessions)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(AgentClient(dev_env.client), Settings.from_env(), url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield url, app
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def console(console_app: tuple[str, Any]) -> str:
    return console_app[0]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        "Chromium is missing: `make test` installs it (tests/install_chromium.sh)"
    )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def sign_in(page: Page, url: str, person: str, state_dir: Path) -> None:
    """Open the console and sign in on the provider's pages, as a person would."""
    await page.goto(url)
    await page.fill("input[name=username]", person)
    await page.fill("input[name=password]", password(state_dir, person))
    await page.click("button[type=submit]")
    await page.click("button[value=allow]")
    await page.wait_for_url(f"{url}/**", timeout=10_000)


async def waiting_run(client: Any, queue: str) -> str:
    run = AgentRun(agent="onboarding", input=hire(full_name="Grace Hopper"), principal="tester")
    handle = await start_run(client, run, f"onboarding-{uuid.uuid4().hex[:8]}", task_queue=queue)
    await wait_for_status(handle, "waiting_event")
    await AgentClient(client).run(handle.id).send_event("clearance_granted", {"granted_by": "sec"})
    await wait_for_status(handle, "waiting_approval")
    return handle.id


async def test_an_approver_approves_from_the_console_and_watches_the_run_finish(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any, console: str,
    browser: Browser,
) -> None:  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    run_id = await waiting_run(dev_env.client, task_queue)
    agents = AgentClient(dev_env.client)
    [asked] = await agents.run(run_id).approvals(pending=True)
    approval_url = f"{console}/runs/{run_id}/approvals/{asked.id}"
    state_dir = sim.db_path.parent

    # mallory has no part in the run: she reads none of it, and what she forges changes nothing.
    mallory = await browser.new_context()
    page = await mallory.new_page()
    await sign_in(page, console, "mallory", state_dir)
    assert await page.locator(f"tr:has-text('{run_id}')").count() == 0  # not in her inbox
    answer = await page.goto(approval_url)
    assert answer is not None and answer.headers["content-security-policy"] == CSP
    assert answer.status == 403 and await page.locator("button.approve").count() == 0
    assert await page.get_by_text(f"mallory has no part in run {run_id}").is_visible()
    assert asked.arguments["body"][:40] not in await page.content()  # nor reads the email
    assert (await mallory.request.get(f"{console}/runs/{run_id}/live")).status == 403
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    form = {"verdict": "approve", "digest": asked.digest, "reason": ""}
    forged = await mallory.request.post(approval_url, form=form)
    assert forged.status == 403 and "did not come from your console page" in await forged.text()
    with_token = await mallory.request.post(approval_url, form=form | {"csrf": csrf or ""})
    assert with_token.status == 403 and "mallory may not decide" in await with_token.text()
    await mallory.close()
    assert [a.state for a in await agents.run(run_id).approvals()] == ["pending"]

    # hana: her inbox, the request in full, approved with the keyboard alone.
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await sign_in(page, console, "hana", state_dir)
    row = page.locator(f"tr:has-text('{run_id}')")
    await row.wait_for()
    assert "send_email" in await row.inner_text()
    await page.screenshot(path=str(SHOTS / "inbox.png"), full_page=True)
    await row.locator("a.open").click()
    await page.wait_for_url(approval_url)
    body = asked.arguments["body"]
    assert await page.locator("pre.body").inner_text() == body  # the whole email, as text
    assert await page.get_by_text(f"To: {asked.arguments['to']}").is_visible()
    await page.screenshot(path=str(SHOTS / "approval.png"), full_page=True)
    await page.locator("form.decide input[name=reason]").focus()
    await page.keyboard.type("reads well")
    await page.keyboard.press("Tab")  # onto Approve
    assert await page.evaluate("document.activeElement.value") == "approve"
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{console}/runs/{run_id}")
    await page.locator("#live li").first.wait_for()
    await page.screenshot(path=str(SHOTS / "run.png"), full_page=True)
    await page.locator("#live li.status:has-text('status: completed')").wait_for(timeout=60_000)
    assert await page.locator("#status").inner_text() == "completed"
    link = await page.locator("a.ui").get_attribute("href")
    assert link and link.endswith(f"/namespaces/default/workflows/{run_id}")
    await page.reload()  # the transcript as of now: the whole record, on request
    await page.get_by_text("Transcript (").click()
    entries = page.locator("details.transcript tbody tr")
    assert await entries.count() > 5
    assert (
        "apr-1 approved by hana: reads well"
        in await page.locator("details.transcript").inner_text()
    )
    await page.screenshot(path=str(SHOTS / "run-finished.png"), full_page=True)
    await context.close()

    [decided] = await agents.run(run_id).approvals()
    assert (decided.state, decided.decided_by, decided.reason) == ("approved", "hana", "reads well")
    assert decided.proof_id  # made with her proof, checked by the worker
    assert (await agents.run(run_id).result()).outcome == "completed"


async def test_an_approver_edits_the_email_then_approves_it(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any, console: str,
    browser: Browser,
) -> None:  # fmt: skip
    """Edit then approve in the browser: hugo rewords the email (its recipient is not his to
    change: no field for it), approves, and the run sends what he wrote."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    run_id = await waiting_run(dev_env.client, task_queue)
    agents = AgentClient(dev_env.client)
    [asked] = await agents.run(run_id).approvals(pending=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "hugo", sim.db_path.parent)
    await page.goto(f"{console}/runs/{run_id}/approvals/{asked.id}")
    await page.get_by_text("Edit then approve").click()
    assert await page.locator("[name='arg.to']").count() == 0  # the recipient is fixed
    body = page.locator("textarea[name='arg.body']")
    assert await body.input_value() == asked.arguments["body"]
    await page.fill("input[name='arg.subject']", "Welcome to the team, Grace")
    await body.fill("Dear Grace,\n\nWelcome! Your laptop ships Monday.\n\nHR")
    await page.fill("#edit-reason", "friendlier")
    await page.screenshot(path=str(SHOTS / "approval-edit.png"), full_page=True)
    await page.click("button[value=edit]")
    await page.wait_for_url(f"{console}/runs/{run_id}")
    await page.locator("#live li.status:has-text('status: completed')").wait_for(timeout=60_000)
    await page.goto(f"{console}/runs/{run_id}/approvals/{asked.id}")
    edited = page.locator("section.email.edited")
    assert await edited.locator("pre.body").inner_text() == (
        "Dear Grace,\n\nWelcome! Your laptop ships Monday.\n\nHR"
    )
    await page.screenshot(path=str(SHOTS / "approval-edited.png"), full_page=True)
    await context.close()

    [decided] = await agents.run(run_id).approvals()
    assert (decided.state, decided.decided_by, decided.reason) == ("approved", "hugo", "friendlier")
    assert decided.edited_arguments == asked.arguments | {
        "subject": "Welcome to the team, Grace",
        "body": "Dear Grace,\n\nWelcome! Your laptop ships Monday.\n\nHR",
    }  # line ends as written, not as the browser sent them (CR LF)
    assert decided.edited_digest and decided.proof_id


async def test_a_session_outlives_its_access_token_and_a_revoked_one_signs_out(
    dev_env: WorkflowEnvironment, sim: Any, console_app: tuple[str, Any], browser: Browser
) -> None:
    """The console refreshes the signed-in person's access token when it runs out (rotating the
    refresh token), so an approver is not sent back to sign in every ten minutes; once the
    provider refuses the refresh (a token used twice revokes its family), they sign in again."""
    import time

    url, app = console_app
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, url, "hana", sim.db_path.parent)
    [session] = app.state.console.sessions.values()
    first_access, first_refresh = session.access_token, session.refresh_token
    assert first_refresh
    session.expires_at = time.time() - 1  # the access token has run out
    answer = await page.goto(url)
    assert answer is not None and answer.status == 200 and answer.url.startswith(url)
    assert await page.get_by_text("signed in as hana").is_visible()
    assert session.access_token != first_access and session.refresh_token != first_refresh
    assert session.expires_at > time.time() + 60

    # The old refresh token comes back (copied): the provider revokes the whole family.
    import httpx

    endpoint = session.token_endpoint
    reused = httpx.post(endpoint, data={"grant_type": "refresh_token", "client_id": "agentctl",
                                        "refresh_token": first_refresh})  # fmt: skip
    assert reused.status_code == 400
    session.expires_at = time.time() - 1
    answer = await page.goto(url)
    assert answer is not None and "/login" in answer.url or "username" in await page.content()
    assert app.state.console.sessions == {}
    await context.close()


async def test_the_console_asks_who_you_are_and_takes_no_sign_in_it_did_not_start(
    console: str,
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=console, follow_redirects=False) as http:
        inbox = await http.get("/")
        assert inbox.status_code == 303 and inbox.headers["location"] == "/login?next=/"
        assert inbox.headers["content-security-policy"] == CSP
        login = await http.get("/login", params={"next": "//evil.example/x"})
        assert (
            login.status_code == 303 and "code_challenge_method=S256" in login.headers["location"]
        )
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        # A code and state from elsewhere (a forged or replayed callback): refused.
        forged = await http.get("/callback", params={"code": "x", "state": "y"})
        assert forged.status_code == 403 and "not one the console started" in forged.text
        assert (await http.get("/runs/any/live")).status_code == 401
        decided = await http.post("/runs/any/approvals/apr-1", data={"verdict": "approve"})
        assert decided.status_code == 401


async def test_an_operator_aborts_a_parked_run_from_its_page(
    dev_env: WorkflowEnvironment, dev_worker: Any, task_queue: str, sim: Any, console: str,
    browser: Browser,
) -> None:  # fmt: skip
    # A model nobody configured: the run parks, needing an operator.
    run = AgentRun(agent="onboarding", input=hire(), principal="tester", model_route=["nowhere:x"])
    # Started as an ops tool would, past the client's own check of the route.
    handle = await dev_env.client.start_workflow(
        "AgentWorkflow", run, id=f"onboarding-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    await wait_for_status(handle, "needs_attention")
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, console, "olga", sim.db_path.parent)  # of the operators
    await page.goto(f"{console}/runs/{handle.id}")
    assert "no model provider 'nowhere'" in await page.locator("section.parked").inner_text()
    await page.fill("input[name=reason]", "no such model here")
    await page.click("button[value=abort]")
    await page.wait_for_url(f"{console}/runs/{handle.id}")
    await page.locator("#live li.status:has-text('status: aborted')").wait_for(timeout=30_000)
    await context.close()
    result = await AgentClient(dev_env.client).run(handle.id).result()
    assert result.outcome == "aborted" and "no such model here" in result.answer


def test_what_a_model_or_tool_wrote_is_text_on_the_page() -> None:
    """Arguments, reasons and names are escaped: a model that writes HTML shows it as text."""
    from datetime import UTC, datetime

    from fastapi.templating import Jinja2Templates

    from durable_agents._vocab.schemas import Approval
    from durable_agents.starters.console import HERE

    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    now = datetime.now(UTC)
    approval = Approval(
        id="apr-1", run="r-1", tool="send_email", tool_call_id="c1", digest="0" * 16,
        arguments={"to": evil, "subject": evil, "body": evil}, summary=evil, rule=evil,
        requested_at=now, expires_at=now, groups=["hr-managers"],
    )  # fmt: skip
    pages = Jinja2Templates(directory=HERE / "console_templates")
    html = pages.get_template("approval.html").render(
        run=evil, status={"agent": evil, "principal": evil}, a=approval, may=True, csrf="t",
        me=evil, email={"to": evil, "subject": evil, "body": evil},
    )  # fmt: skip
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
