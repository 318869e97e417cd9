"""`agentctl console`: the approvers' web console, over `durable_agents.client`.

People sign in at the configured OpenID provider (authorization code with PKCE, RFC 7636, to a
loopback redirect); the console keeps their tokens server-side, keyed by a random session id in
an HttpOnly, SameSite cookie (Secure over HTTPS). Pages are rendered on the server by Jinja2 with
autoescaping: model and tool text is always text, never HTML. Every form carries the session's
CSRF token; every response a strict Content-Security-Policy (scripts from the console only, no
inline script or style, no framing). A decision is made with the signed-in person's proof for
exactly it (token exchange, as `agentctl` does): the run checks it, and who may decide is the
run's approval policy. The one script (static/live.js) shows a run's steps as they come, from
`GET /runs/RUN/live` (server-sent events over the run's Workflow Stream).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette.sse import EventSourceResponse

from durable_agents.client import AgentClient
from durable_agents.errors import RequestError
from durable_agents.settings import Settings

HERE = Path(__file__).parent
COOKIE = "da_session"
LOGIN_COOKIE = "da_login"
SESSION_S = 8 * 3600  # a session lasts a working day at most
REFRESH_MARGIN_S = 30  # an access token this close to its end is refreshed first
LOGIN_S = 600  # a sign-in must come back within 10 minutes
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SCOPE = "openid runs"


@dataclass
class Session:
    subject: str
    access_token: str
    token_endpoint: str
    expires_at: float  # of the access token
    refresh_token: str = ""  # rotated at each refresh; none: the session ends with the token
    signed_in_at: float = field(default_factory=time.time)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # One refresh at a time: a refresh token is good once (a second use revokes its family).
    refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def ends_at(self) -> float:
        """When the session ends for good: a working day after sign-in."""
        return self.signed_in_at + SESSION_S


@dataclass
class Login:
    verifier: str
    state: str
    started: float
    target: str  # where to go once signed in (a path of the console's)


@dataclass
class Console:
    """The console's state: its client, the provider, and the sessions (in memory: a restart
    signs everyone out)."""

    agents: AgentClient
    settings: Settings
    base_url: str
    sessions: dict[str, Session] = field(default_factory=dict)
    logins: dict[str, Login] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)

    def forget_stale(self) -> None:
        """Drop sessions that ran out and sign-ins never finished (both are in memory)."""
        now = time.time()
        gone = [
            k
            for k, v in self.sessions.items()
            if v.ends_at < now or (v.expires_at < now and not v.refresh_token)
        ]
        for key in gone:
            del self.sessions[key]
        for key in [k for k, v in self.logins.items() if now - v.started > LOGIN_S]:
            del self.logins[key]

    def known(self, request: Request) -> Session | None:
        """The session as it is (a page's header: the handler refreshed it already)."""
        found = self.sessions.get(request.cookies.get(COOKIE, ""))
        return found if found is not None and found.expires_at > time.time() else None

    async def session(self, request: Request) -> Session | None:
        """The signed-in person's session; its access token refreshed (the refresh token
        rotated) when it has run out, until the session's day is over; None if there is none
        or the provider will not refresh it (they sign in again)."""
        key = request.cookies.get(COOKIE, "")
        found = self.sessions.get(key)
        if found is None or found.ends_at < time.time():
            return None
        async with found.refreshing:
            if found.expires_at - REFRESH_MARGIN_S < time.time() and not await self._refresh(found):
                self.sessions.pop(key, None)
                return None
        return found

    async def _refresh(self, session: Session) -> bool:
        import httpx

        if not session.refresh_token:
            return False
        form = {
            "grant_type": "refresh_token",
            "refresh_token": session.refresh_token,
            "client_id": self.settings.oidc_client_id,
        }
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(session.token_endpoint, data=form)
        except httpx.HTTPError:
            return False
        token = answer.json() if answer.status_code == 200 else {}
        access = token.get("access_token")
        if not isinstance(access, str):
            return False
        session.access_token = access
        session.refresh_token = str(token.get("refresh_token") or "")
        session.expires_at = time.time() + float(token.get("expires_in", 300))
        return True

    async def discover(self) -> dict[str, Any]:
        import httpx

        if not self.provider:
            issuer = self.settings.identity_provider
            if issuer is None:
                raise RequestError("the console needs DURABLE_AGENTS_OIDC_URL (no provider set)")
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(f"{issuer}/.well-known/openid-configuration")
                answer.raise_for_status()
                self.provider = answer.json()
        return self.provider

    async def prove(self, session: Session, details: dict[str, Any]) -> tuple[str, str]:
        """A proof from the provider that `session`'s person sends exactly `details`."""
        import httpx

        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": session.access_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": self.settings.proof_audience,
            "authorization_details": json.dumps([details]),
            "client_id": self.settings.oidc_client_id,
        }
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(session.token_endpoint, data=form)
        token = answer.json().get("access_token") if answer.status_code == 200 else None
        if not isinstance(token, str):
            raise RequestError(f"the identity provider gave no proof ({answer.status_code})")
        return session.subject, token


def create_app(agents: AgentClient, settings: Settings, base_url: str) -> FastAPI:
    """The console on `agents`' Temporal client, reached at `base_url` (its redirect URI)."""
    console = Console(agents, settings, base_url.rstrip("/"))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    pages = Jinja2Templates(directory=HERE / "console_templates")  # autoescape on for .html
    app.mount("/static", StaticFiles(directory=HERE / "console_static"), name="static")
    secure = base_url.startswith("https://")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def page(request: Request, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        session = console.known(request)
        values["me"] = session.subject if session else None
        values["csrf"] = session.csrf if session else ""
        return pages.TemplateResponse(request, name, values, status_code=code)

    def refuse(request: Request, why: str, code: int = 403) -> HTMLResponse:
        return page(request, "refused.html", code=code, why=why)

    async def posted(request: Request, csrf: str) -> Session | Response:
        """The session a form was posted in, or the refusal: not signed in, or a form that did
        not come from the person's console page (its CSRF token)."""
        session = await console.session(request)
        if session is None:
            return refuse(request, "sign in first", code=401)
        if not hmac.compare_digest(csrf, session.csrf):
            return refuse(request, "this form did not come from your console page: reload it")
        return session

    def to_login(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.get("/login")
    async def login(next: str = "/") -> Response:
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        console.forget_stale()
        found = await console.discover()
        verifier, state = secrets.token_urlsafe(48), generate_token(32)
        key = secrets.token_urlsafe(24)
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        console.logins[key] = Login(verifier, state, time.time(), target)
        query = {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": f"{console.base_url}/callback",
            "scope": SCOPE,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        url = (
            found["authorization_endpoint"]
            + "?"
            + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            LOGIN_COOKIE, key, max_age=LOGIN_S, httponly=True, samesite="lax", secure=secure
        )
        return response

    @app.get("/callback")
    async def callback(request: Request, code: str = "", state: str = "") -> Response:
        import httpx

        started = console.logins.pop(request.cookies.get(LOGIN_COOKIE, ""), None)
        if (
            started is None
            or time.time() - started.started > LOGIN_S
            or not hmac.compare_digest(state, started.state)
            or not code
        ):
            return refuse(request, "this sign-in is not one the console started: sign in again")
        found = await console.discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{console.base_url}/callback",
            "client_id": settings.oidc_client_id,
            "code_verifier": started.verifier,
        }
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(found["token_endpoint"], data=form)
        token = answer.json() if answer.status_code == 200 else {}
        access = token.get("access_token")
        if not isinstance(access, str):
            return refuse(request, "the identity provider did not sign you in", code=401)
        userinfo = str(found.get("userinfo_endpoint", ""))
        async with httpx.AsyncClient(timeout=10) as http:
            me = await http.get(userinfo, headers={"Authorization": f"Bearer {access}"})
        subject = me.json().get("sub") if me.status_code == 200 else None
        if not isinstance(subject, str) or not subject:
            return refuse(request, "the identity provider did not say who you are", code=401)
        key = secrets.token_urlsafe(32)
        expires = time.time() + float(token.get("expires_in", 300))
        refresh = str(token.get("refresh_token") or "")
        console.sessions[key] = Session(subject, access, found["token_endpoint"], expires, refresh)
        response = RedirectResponse(started.target, status_code=303)
        response.delete_cookie(LOGIN_COOKIE)
        response.set_cookie(
            COOKIE, key, max_age=SESSION_S, httponly=True, samesite="lax", secure=secure
        )
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        session = await console.session(request)
        if session is not None and hmac.compare_digest(csrf, session.csrf):
            console.sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def inbox(request: Request) -> Response:
        session = await console.session(request)
        if session is None:
            return to_login(request)
        problems: dict[str, str] = {}
        rows = await agents.pending_approvals(session.subject, problems)
        rows.sort(key=lambda r: r["requested_at"])
        return page(request, "inbox.html", rows=rows, problems=problems)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> Response:
        session = await console.session(request)
        if session is None:
            return to_login(request)
        try:
            status = await agents.run(run_id).status()
        except RequestError as exc:
            return refuse(request, str(exc), code=404)
        if not _may_see(session.subject, status):
            return refuse(request, f"{session.subject} has no part in run {run_id}")
        may_operate = status.status == "needs_attention" and _operates(
            session.subject, status.principal
        )
        transcript = await agents.run(run_id).transcript()
        return page(
            request,
            "run.html",
            run=run_id,
            status=status,
            operate=may_operate,
            transcript=transcript,
            ui=_ui_link(run_id),
        )

    @app.get("/runs/{run_id}/approvals/{approval_id}", response_class=HTMLResponse)
    async def approval_page(request: Request, run_id: str, approval_id: str) -> Response:
        session = await console.session(request)
        if session is None:
            return to_login(request)
        found = await _approval(run_id, approval_id)
        if isinstance(found, str):
            return refuse(request, found, code=404)
        status, approval = found
        if not _may_see(session.subject, status):
            return refuse(request, f"{session.subject} has no part in run {run_id}")
        return page(
            request,
            "approval.html",
            run=run_id,
            status=status,
            a=approval,
            may=approval.state == "pending" and _may(session.subject, approval),
            email=_email(approval.arguments),
            edited_email=_email(approval.edited_arguments or {}),
            edits=_edit_fields(approval),
        )

    @app.post("/runs/{run_id}/approvals/{approval_id}")
    async def decide(
        request: Request,
        run_id: str,
        approval_id: str,
        csrf: str = Form(""),
        verdict: str = Form(""),
        digest: str = Form(""),
        reason: str = Form(""),
    ) -> Response:
        from durable_agents._ops import built, edits
        from durable_agents._vocab.schemas import Decision

        session = await posted(request, csrf)
        if isinstance(session, Response):
            return session
        if verdict not in ("approve", "reject", "edit"):
            return refuse(request, "approve, reject, or edit then approve", code=400)
        found = await _approval(run_id, approval_id)
        if isinstance(found, str):
            return refuse(request, found, code=404)
        _, approval = found
        if not _may(session.subject, approval):
            return refuse(request, f"{session.subject} may not decide {approval_id}")
        try:
            arguments = None
            if verdict == "edit":
                form = await request.form()
                changes = {
                    # A browser sends a text area's line ends as CR LF.
                    name: str(form.get(f"arg.{name}", "")).replace("\r\n", "\n")
                    for name in approval.editable
                    if f"arg.{name}" in form
                }
                arguments = edits(approval, changes)
            decision = built(
                Decision,
                approve=verdict != "reject",
                approver=session.subject,
                approval_id=approval_id,
                reason=reason,
                digest=digest,
                arguments=arguments,
            )

            async def prover(details: dict[str, Any]) -> tuple[str, str]:
                return await console.prove(session, details)

            client = AgentClient(agents.temporal, prover=prover)
            await client.run(run_id).decide(decision)
        except RequestError as exc:
            return refuse(request, str(exc), code=409)
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}", status_code=303)

    @app.post("/runs/{run_id}/operate")
    async def operate(
        request: Request,
        run_id: str,
        csrf: str = Form(""),
        action: str = Form(""),
        reason: str = Form(""),
    ) -> Response:
        """An operator's choice for a parked run: resume, retry the turn, or abort (the run
        takes it from a member of `operators`, or its own principal, with their proof)."""
        session = await posted(request, csrf)
        if isinstance(session, Response):
            return session
        if action not in ("resume", "retry_turn", "abort"):
            return refuse(request, "resume, retry_turn or abort", code=400)

        async def prover(details: dict[str, Any]) -> tuple[str, str]:
            return await console.prove(session, details)

        run = AgentClient(agents.temporal, prover=prover).run(run_id)
        try:
            status = await run.status()
            if not _operates(session.subject, status.principal):
                return refuse(request, f"{session.subject} is no operator of this run")
            await getattr(run, action)(reason)
        except RequestError as exc:
            return refuse(request, str(exc), code=409)
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}", status_code=303)

    @app.get("/runs/{run_id}/live")
    async def live(request: Request, run_id: str) -> Response:
        session = await console.session(request)
        if session is None:
            return Response(status_code=401)
        try:
            if not _may_see(session.subject, await agents.run(run_id).status()):
                return Response(status_code=403)
        except RequestError:
            return Response(status_code=404)

        async def events() -> AsyncIterator[dict[str, str]]:
            async for offset, event in agents.run(run_id).watch():
                data = {"offset": offset, **event.model_dump(mode="json")}
                yield {"data": json.dumps(data), "id": str(offset)}

        return EventSourceResponse(events())

    async def _approval(run_id: str, approval_id: str) -> tuple[Any, Any] | str:
        try:
            status = await agents.run(run_id).status()
        except RequestError as exc:
            return str(exc)
        for a in status.approvals:
            if a.id == approval_id:
                return status, a
        return f"run {run_id} has no approval {approval_id}"

    def _ui_link(run_id: str) -> str:
        from durable_agents.starters.common import ui_link
        from durable_agents.starters.devserver import DEFAULT_UI_URL, announced_ui

        temporal = agents.temporal
        address = temporal.service_client.config.target_host
        base = settings.ui_url or announced_ui(settings.state_dir, address) or DEFAULT_UI_URL
        return ui_link(run_id, temporal.namespace, base.rstrip("/"))

    def _operates(subject: str, principal: str) -> bool:
        from durable_agents._ops import catalog

        return subject == principal or subject in catalog().directory.members("operators")

    def _may_see(subject: str, status: Any) -> bool:
        """Who may read a run (its arguments, emails, transcript): the person it acts for, its
        operators, and whoever may decide one of its approvals."""
        return _operates(subject, status.principal) or any(
            _may(subject, a) for a in status.approvals
        )

    def _may(subject: str, approval: Any) -> bool:
        from durable_agents._approvals import may_decide
        from durable_agents._ops import catalog

        return may_decide(subject, approval.requested_for, approval.groups, catalog().directory)

    return app


def _email(arguments: dict[str, Any]) -> dict[str, str] | None:
    """An email's parts, when the arguments are one (to, subject, body)."""
    if {"to", "subject", "body"} <= set(arguments):
        return {k: str(arguments[k]) for k in ("to", "subject", "body")}
    return None


def _edit_fields(approval: Any) -> list[dict[str, Any]]:
    """The arguments a person may edit on this approval, as the form shows them: text as it
    is (a long one in a text area), anything else as JSON."""
    if approval.state != "pending":
        return []
    fields = []
    for name in approval.editable:
        value = approval.arguments.get(name)
        text = isinstance(value, str)
        shown = value if text else json.dumps(value)
        fields.append(
            {"name": name, "value": shown, "text": text, "long": len(shown) > 80 or "\n" in shown}
        )
    return fields


async def serve(agents: AgentClient, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    app = create_app(agents, settings, f"http://{host}:{port}")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    await server.serve()


__all__ = ["create_app", "serve"]
