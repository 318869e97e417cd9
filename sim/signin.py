"""The identity provider's HTTP face (`/idp`): the token endpoint for agents and people, the
keys, discovery, the admin calls, and the pages people sign in on.

The pages are plain forms, escaped, under a strict Content-Security-Policy, and every POST
carries a CSRF token that must match the one in its cookie (double submit), so another site
cannot make a signed-in browser approve a device.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import secrets
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sim.idp import (
    ISSUER,
    TOKEN_EXCHANGE,
    Conflict,
    IdentityProvider,
    Registration,
    bearer_challenge,
    oauth_error,
)
from sim.people import (
    CSRF_COOKIE,
    DEVICE_CODE,
    DEVICE_LIFETIME_S,
    PAGE_HEADERS,
    POLL_INTERVAL_S,
    PUBLIC_CLIENTS,
    Authorization,
    OAuthError,
    People,
    consent_form,
    page,
    sign_in_form,
)

REFRESH = "refresh_token"
AUTHORIZATION_CODE = "authorization_code"


class GrantIn(BaseModel, extra="forbid"):
    agent: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=100)


class RevokeIn(BaseModel, extra="forbid"):
    agent: str = Field(min_length=1, max_length=200)


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """client_secret_basic, or client_secret_post."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        return unquote_plus(user), unquote_plus(password)
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    return None


def _answer(work: Any) -> JSONResponse:
    try:
        body = work()
    except OAuthError as exc:
        return oauth_error(exc.status, exc.error, exc.description)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _people_grant(people: People, form: dict[str, str]) -> JSONResponse | None:
    """A public client's grant (a person's), or None for an agent's confidential client."""
    client_id = form.get("client_id", "")
    if client_id not in PUBLIC_CLIENTS or form.get("client_secret"):
        return None
    grant = form.get("grant_type", "")
    if grant == DEVICE_CODE:
        return _answer(lambda: people.poll(client_id, form.get("device_code", "")))
    if grant == REFRESH:
        return _answer(lambda: people.refresh(client_id, form.get("refresh_token", "")))
    if grant == AUTHORIZATION_CODE:
        return _answer(lambda: people.redeem(client_id, form))
    if grant == TOKEN_EXCHANGE and form.get("subject_token"):
        return _answer(lambda: people.proof(client_id, form))
    return oauth_error(400, "unsupported_grant_type", f"{client_id} may not use {grant[:80]!r}")


def _page(body: str, csrf: str, status: int = 200, redirects_to: str = "") -> HTMLResponse:
    """A page of the provider's; `redirects_to`: the origin its form's answer redirects to (a
    browser holds a form's redirect to `form-action` too: the consent page goes back to the
    application)."""
    headers = dict(PAGE_HEADERS)
    if redirects_to:
        split = urlsplit(redirects_to)
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "form-action 'self'", f"form-action 'self' {split.scheme}://{split.netloc}"
        )
    response = HTMLResponse(body, status_code=status, headers=headers)
    response.set_cookie(
        CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/idp", max_age=900
    )
    return response


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf", "")
    return bool(cookie) and hmac.compare_digest(cookie, sent)


async def _checked_form(request: Request) -> tuple[dict[str, str], str, HTMLResponse | None]:
    """A page's posted form, a fresh CSRF token for the next page, and the refusal to send
    instead if the form's CSRF token is not its cookie's (a form posted from elsewhere)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    csrf = secrets.token_urlsafe(24)
    if _csrf_ok(request, form):
        return form, csrf, None
    expired = sign_in_form(csrf, error="The form expired: sign in again.")
    return form, csrf, _page(expired, csrf, 403)


def idp_router(idp: IdentityProvider, people: People) -> APIRouter:
    router = APIRouter(prefix="/idp", tags=["identity"])

    @router.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        answered = _people_grant(people, form)
        if answered is not None:
            return answered
        auth = _client_auth(request, form)
        client = idp.authenticate(*auth) if auth else None
        if client is None:
            return oauth_error(401, "invalid_client", "unknown client or wrong secret")
        return idp.issue(client, form)

    @router.post("/device_authorization")
    async def device_authorization(request: Request) -> JSONResponse:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            device_code, user_code = people.start_device(
                form.get("client_id", ""), form.get("scope", "")
            )
        except OAuthError as exc:
            return oauth_error(exc.status, exc.error, exc.description)
        base = str(request.base_url).rstrip("/") + "/idp/device"
        return JSONResponse(
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": base,
                "verification_uri_complete": f"{base}?user_code={user_code}",
                "expires_in": DEVICE_LIFETIME_S,
                "interval": POLL_INTERVAL_S,
            },
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/device")
    def device_page(user_code: str = "") -> HTMLResponse:
        csrf = secrets.token_urlsafe(24)
        return _page(sign_in_form(csrf, user_code[:16]), csrf)

    @router.post("/device")
    async def device_sign_in(request: Request) -> HTMLResponse:
        form, csrf, refused = await _checked_form(request)
        if refused is not None:
            return refused
        device = people.pending(form.get("user_code", "")[:32])
        if device is None:
            why = "That code is unknown, expired or already used: ask your device for a new one."
            return _page(sign_in_form(csrf, error=why), csrf, 400)
        signed = people.sign_in(device, form.get("username", "")[:200], form.get("password", ""))
        if signed is None:
            why = "Wrong name or password."
            return _page(sign_in_form(csrf, device.user_code, why), csrf, 401)
        person, ticket = signed
        return _page(consent_form(csrf, ticket, person, device.client_id, device.scope), csrf)

    @router.post("/device/consent")
    async def device_consent(request: Request) -> HTMLResponse:
        form, csrf, refused = await _checked_form(request)
        if refused is not None:
            return refused
        done = people.consent(form.get("ticket", ""), form.get("decision") == "allow")
        if done is None:
            why = "That sign-in is no longer waiting: start again from your device."
            return _page(sign_in_form(csrf, error=why), csrf, 400)
        person, allowed = done
        text = (
            f"<p>Signed in as <strong>{person}</strong>. You can close this page and go back "
            "to your terminal.</p>"
            if allowed
            else "<p>Access refused. Nothing was shared with the device.</p>"
        )
        return _page(page("Done" if allowed else "Refused", text), csrf)

    @router.get("/authorize")
    def authorize(request: Request) -> Response:
        """An authorization request (code flow with PKCE): its sign-in page. A request that
        names no acceptable client or redirect gets an error page, never a redirect."""
        csrf = secrets.token_urlsafe(24)
        try:
            ticket, _ = people.start_authorization(dict(request.query_params))
        except OAuthError as exc:
            return _page(page("Sign-in refused", f"<p>{html.escape(exc.description)}</p>"),
                         csrf, 400)  # fmt: skip
        return _page(sign_in_form(csrf, request=ticket), csrf)

    async def pending_request(
        request: Request, field: str
    ) -> tuple[dict[str, str], str, str, Authorization | None, HTMLResponse | None]:
        """A code-flow page's form, a new CSRF token, the request's ticket and the request it
        names, or the refusal to send (a forged form, a request used or gone)."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        csrf = secrets.token_urlsafe(24)
        ticket = form.get(field, "")[:100]
        pending = people.authorization(ticket)
        if _csrf_ok(request, form) and pending is not None:
            return form, csrf, ticket, pending, None
        why = "The sign-in expired or was already used: start again from your application."
        return form, csrf, ticket, None, _page(page("Sign-in refused", f"<p>{why}</p>"), csrf, 403)

    @router.post("/authorize")
    async def authorize_sign_in(request: Request) -> HTMLResponse:
        form, csrf, ticket, pending, refused = await pending_request(request, "request")
        if pending is None:
            assert refused is not None
            return refused
        person = people.check_password(form.get("username", "")[:200], form.get("password", ""))
        if person is None:
            people.authorization_failed(ticket)
            return _page(sign_in_form(csrf, error="Wrong name or password.", request=ticket),
                         csrf, 401)  # fmt: skip
        people.authorize_as(ticket, person)
        body = consent_form(csrf, ticket, person, pending.client_id, pending.scope,
                            action="/idp/authorize/consent")  # fmt: skip
        return _page(body, csrf, redirects_to=pending.redirect_uri)

    @router.post("/authorize/consent")
    async def authorize_consent(request: Request) -> Response:
        form, csrf, ticket, pending, refused = await pending_request(request, "ticket")
        if pending is None or pending.subject is None:  # consent comes after a sign-in
            why = "The sign-in expired or was already used: start again from your application."
            return refused or _page(page("Sign-in refused", f"<p>{why}</p>"), csrf, 403)
        if form.get("decision") == "allow":
            answer = {"code": people.issue_code(ticket), "state": pending.state}
        else:
            answer = {"error": "access_denied", "state": pending.state}
        return RedirectResponse(f"{pending.redirect_uri}?{urlencode(answer)}", status_code=303)

    @router.post("/revoke")
    async def revoke_token(request: Request) -> JSONResponse:
        """RFC 7009: a refresh token (and its family) is revoked; unknown ones too (200)."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        people.revoke_refresh(form.get("token", ""))
        return JSONResponse({})

    @router.get("/userinfo")
    def userinfo(request: Request) -> JSONResponse:
        kind, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            subject = people.person(value) if kind.lower() == "bearer" else None
        except OAuthError:
            subject = None
        if subject is None:
            return bearer_challenge(401, "a person's access token is required")
        return JSONResponse({"sub": subject})

    def _person(request: Request) -> str | None:
        kind, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            return people.person(value) if kind.lower() == "bearer" else None
        except OAuthError:
            return None

    @router.post("/grants")
    def grant(body: GrantIn, request: Request) -> JSONResponse:
        """The signed-in person lets an agent act for them with these scopes."""
        subject = _person(request)
        if subject is None:
            return bearer_challenge(401, "a person's access token is required (agentctl login)")
        allowed = idp.agent_scopes(body.agent)
        if allowed is None:
            return JSONResponse({"detail": f"no agent {body.agent!r} here"}, status_code=404)
        beyond = sorted(set(body.scopes) - allowed)
        if beyond:
            why = f"{body.agent} never asks for {', '.join(beyond)}; it may: {sorted(allowed)}"
            return JSONResponse({"detail": why}, status_code=400)
        return JSONResponse(
            {"agent": body.agent, "scopes": people.grant(subject, body.agent, body.scopes)}
        )

    @router.get("/grants")
    def grants(request: Request) -> JSONResponse:
        subject = _person(request)
        if subject is None:
            return bearer_challenge(401, "a person's access token is required (agentctl login)")
        return JSONResponse({"subject": subject, "grants": people.grants(subject)})

    @router.post("/grants/revoke")
    def revoke(body: RevokeIn, request: Request) -> JSONResponse:
        """Nothing more for this agent: its runs for this person park at their next effect."""
        subject = _person(request)
        if subject is None:
            return bearer_challenge(401, "a person's access token is required (agentctl login)")
        return JSONResponse({"agent": body.agent, "revoked": people.revoke(subject, body.agent)})

    @router.get("/jwks")
    def jwks() -> dict[str, Any]:
        return idp.jwks

    @router.get("/.well-known/openid-configuration")
    def discovery(request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/") + "/idp"
        return {
            "issuer": ISSUER,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "device_authorization_endpoint": f"{base}/device_authorization",
            "authorization_endpoint": f"{base}/authorize",
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "userinfo_endpoint": f"{base}/userinfo",
            "revocation_endpoint": f"{base}/revoke",
            "grant_types_supported": [
                "client_credentials",
                TOKEN_EXCHANGE,
                DEVICE_CODE,
                AUTHORIZATION_CODE,
                REFRESH,
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "authorization_details_types_supported": ["durable_agents"],
        }

    @router.post("/clients")
    def register(body: Registration, request: Request) -> JSONResponse:
        if not idp.is_admin(request.headers.get("authorization")):
            return bearer_challenge(401, "registering a client needs the admin credential")
        try:
            client_id, secret = idp.register(
                body.agent, body.scopes, body.audiences, body.client_id
            )
        except Conflict as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        return JSONResponse({"client_id": client_id, "client_secret": secret})

    @router.post("/keys/rotate")
    def rotate(request: Request) -> JSONResponse:
        if not idp.is_admin(request.headers.get("authorization")):
            return bearer_challenge(401, "rotating the signing key needs the admin credential")
        return JSONResponse({"kid": idp.rotate()})

    @router.get("/issued")
    def issued(run: str | None = None) -> dict[str, Any]:
        return {"issued": idp.issued(run)}

    @router.get("/proofs")
    def proofs(run: str) -> dict[str, Any]:
        return {"proofs": people.proofs(run)}

    return router
