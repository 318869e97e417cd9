"""`agentctl login | whoami | logout`, and the proofs every person's message carries.

A person signs in at the configured OpenID provider (DURABLE_AGENTS_OIDC_URL; none by
default) with the OAuth 2.0 Device Authorization Grant (RFC 8628), through authlib's client:
the CLI prints a code and the page to enter it on, and polls until the person has signed in and
consented there. The tokens are kept per Temporal profile in a file only its owner can read
(DURABLE_AGENTS_SIGNIN_FILE; by default `$XDG_CONFIG_HOME/durable-agents/signin.json`) and
refreshed when they run out.

Before each message into a run (a decision, a message, an operator's action) the CLI exchanges
the person's access token for a proof bound to that message (RFC 8693 with RFC 9396
`authorization_details`, `durable_agents._vocab.proofs`): the run takes the message from the
proof's subject only, once. The access and refresh tokens never leave this machine but to the
provider; only the single-use proof goes into the run.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from durable_agents.errors import RequestError
from durable_agents.starters.common import emit, fail

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SCOPE = "openid runs"
# An access token is refreshed when it has less than this left.
MARGIN_S = 30
NOT_SIGNED_IN = "not signed in: run `agentctl login` first"


def _profile() -> str:
    return os.environ.get("TEMPORAL_PROFILE") or "default"


def store_path() -> Path:
    from durable_agents.settings import current

    given = current().signin_file
    if given is not None:
        return given
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "durable-agents" / "signin.json"


def _read_store() -> dict[str, Any]:
    path = store_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RequestError(
            f"the sign-in file {path} cannot be read ({exc}): `agentctl login`"
        ) from None
    return data if isinstance(data, dict) else {}


def _write_store(data: dict[str, Any]) -> None:
    """Atomically, readable by its owner only (it holds a refresh token)."""
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1, sort_keys=True)
    os.replace(tmp, path)


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified: for showing who this machine is signed in as (the run
    checks the proof's signature; the provider checks the access token's)."""
    try:
        part = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def provider_url(settings: Any) -> str:
    """The OpenID provider people sign in at, or a RequestError saying how to name it."""
    if settings.identity_provider is None:
        raise RequestError(
            "no identity provider to sign in at: set DURABLE_AGENTS_OIDC_URL to the OpenID "
            "provider's URL (its discovery document is at <url>/.well-known/openid-configuration)"
        )
    return str(settings.identity_provider)


def _discover(http: Any, provider: str) -> dict[str, Any]:
    try:
        answer = http.request(
            "GET", f"{provider}/.well-known/openid-configuration", withhold_token=True
        )
        answer.raise_for_status()
        found = answer.json()
    except Exception as exc:  # noqa: BLE001 - whatever broke, the provider is not usable
        raise RequestError(
            f"the identity provider at {provider} did not answer its discovery document "
            f"({type(exc).__name__}: {exc}); is DURABLE_AGENTS_OIDC_URL right, and the "
            "provider running?"
        ) from None
    if not isinstance(found, dict) or "token_endpoint" not in found:
        raise RequestError(f"{provider} has no OpenID discovery document with a token endpoint")
    return found


def _client() -> Any:
    from authlib.integrations.httpx_client import OAuth2Client

    from durable_agents.settings import current

    settings = current()
    return OAuth2Client(
        settings.oidc_client_id, token_endpoint_auth_method="none", timeout=10.0
    ), settings


def _oauth_call(what: str, work: Any) -> dict[str, Any]:
    from authlib.integrations.base_client.errors import OAuthError

    try:
        answer = work()
    except OAuthError as exc:
        raise RequestError(f"{what}: {exc.error}: {exc.description or ''}".rstrip(": ")) from None
    except OSError as exc:
        raise RequestError(f"{what}: the identity provider did not answer ({exc})") from None
    return dict(answer)


def login_device(print_to: Any = typer.echo) -> dict[str, Any]:
    """The device sign-in: the code to enter, then polling until the person has signed in."""
    from authlib.integrations.base_client.errors import OAuthError

    http, settings = _client()
    provider = provider_url(settings)
    with http:
        found = _discover(http, provider)
        endpoint = found.get("device_authorization_endpoint")
        if not endpoint:
            raise RequestError(f"the provider at {provider} offers no device sign-in (RFC 8628)")
        answer = http.request(
            "POST",
            endpoint,
            data={"client_id": settings.oidc_client_id, "scope": SCOPE},
            withhold_token=True,
        )
        start = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if answer.status_code != 200 or "device_code" not in start:
            raise RequestError(f"the provider refused to start a sign-in: {answer.text[:300]}")
        page = start.get("verification_uri_complete") or start["verification_uri"]
        print_to(f"To sign in, open {page}")
        print_to(f"and enter the code {start['user_code']} (it expires in "
                 f"{int(start.get('expires_in', 600)) // 60} min).")  # fmt: skip
        interval = float(start.get("interval", 5))
        deadline = time.monotonic() + float(start.get("expires_in", 600))
        while time.monotonic() < deadline:
            time.sleep(interval)
            try:
                token = http.fetch_token(
                    found["token_endpoint"],
                    grant_type=DEVICE_CODE,
                    device_code=start["device_code"],
                    client_id=settings.oidc_client_id,
                )
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5
                    continue
                raise RequestError(
                    f"sign-in failed: {exc.error}: {exc.description or ''}"
                ) from None
            return _remember(provider, found, dict(token))
    raise RequestError("the sign-in was not finished in time: run `agentctl login` again")


def login_browser(print_to: Any = typer.echo, wait_s: float = 600) -> dict[str, Any]:
    """The authorization code flow with PKCE (RFC 7636) and a loopback redirect (RFC 8252):
    a listener on a free port of 127.0.0.1 takes the provider's redirect with the code."""
    import queue
    import secrets
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    http, settings = _client()
    http.code_challenge_method = "S256"
    provider = provider_url(settings)
    arrived: queue.Queue[str] = queue.Queue(maxsize=1)

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.startswith("/callback?") and arrived.empty():
                arrived.put(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Signed in: you can close this page and go back to your terminal.")

        def log_message(self, *args: Any) -> None:  # the terminal is the person's
            return

    server = HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    try:
        with http:
            found = _discover(http, provider)
            if "authorization_endpoint" not in found:
                raise RequestError(f"the provider at {provider} offers no authorization code flow")
            verifier = secrets.token_urlsafe(48)
            url, state = http.create_authorization_url(
                found["authorization_endpoint"], redirect_uri=redirect, scope=SCOPE,
                code_verifier=verifier,
            )  # fmt: skip
            print_to(f"To sign in, open {url}")
            try:
                path = arrived.get(timeout=wait_s)
            except queue.Empty:
                raise RequestError(
                    "the sign-in was not finished in time: run `agentctl login` again"
                ) from None
            token = _oauth_call(
                "sign-in failed",
                lambda: http.fetch_token(
                    found["token_endpoint"], authorization_response=f"http://127.0.0.1{path}",
                    redirect_uri=redirect, code_verifier=verifier, state=state,
                ),
            )  # fmt: skip
    finally:
        server.shutdown()
    return _remember(provider, found, token)


def _remember(provider: str, found: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
    said = claims(str(token.get("access_token", "")))
    entry = {
        "provider": provider,
        "issuer": found.get("issuer", ""),
        "token_endpoint": found["token_endpoint"],
        "subject": said.get("sub", ""),
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token", ""),
        "expires_at": float(token.get("expires_at") or time.time() + 300),
    }
    data = _read_store()
    data[_profile()] = entry
    _write_store(data)
    return entry


def session(refresh: bool = True) -> dict[str, Any]:
    """This profile's sign-in, its access token refreshed if it runs out; RequestError if there
    is none (or it can no longer be refreshed)."""
    from durable_agents.settings import current

    entry = _read_store().get(_profile())
    provider = provider_url(current())
    if not isinstance(entry, dict) or not entry.get("access_token"):
        raise RequestError(NOT_SIGNED_IN)
    if entry.get("provider") != provider:
        raise RequestError(
            f"signed in at {entry.get('provider')}, but the identity provider is now "
            f"{provider}: run `agentctl login` again"
        )
    if refresh and float(entry.get("expires_at", 0)) - MARGIN_S < time.time():
        if not entry.get("refresh_token"):
            raise RequestError(f"the sign-in ran out: {NOT_SIGNED_IN}")
        http, settings = _client()
        with http:
            token = _oauth_call(
                "the sign-in could not be renewed (run `agentctl login`)",
                lambda: http.refresh_token(
                    entry["token_endpoint"],
                    refresh_token=entry["refresh_token"],
                    client_id=settings.oidc_client_id,
                ),
            )
        entry = _remember(provider, {"issuer": entry["issuer"], **entry}, token)
    return entry


def proof(details: dict[str, Any]) -> tuple[str, str]:
    """(the signed-in person, a proof that they send the message `details` describe)."""
    from durable_agents.settings import current

    entry = session()
    http, settings = _client()
    with http:
        answer = _oauth_call(
            "the identity provider gave no proof",
            lambda: http.fetch_token(
                entry["token_endpoint"],
                grant_type=TOKEN_EXCHANGE,
                subject_token=entry["access_token"],
                subject_token_type=ACCESS_TOKEN_TYPE,
                audience=current().proof_audience,
                authorization_details=json.dumps([details]),
                client_id=settings.oidc_client_id,
            ),
        )
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise RequestError("the identity provider answered with no proof")
    return str(entry["subject"]), token


async def prover(details: dict[str, Any]) -> tuple[str, str]:
    """The signed-in person and a proof for exactly `details` (durable_agents.client.Prover)."""
    import asyncio

    return await asyncio.to_thread(proof, details)


def signed_in_as(claimed: str | None) -> str:
    """The signed-in person; `--as` (optional) must name them."""
    from durable_agents import _ops as ops

    named = ops.person(claimed) if claimed is not None else None
    who = str(session(refresh=False).get("subject", ""))
    if named is not None and named != who:
        raise RequestError(
            f"--as {claimed!r}, but this machine is signed in as {who!r}: leave --as out, or "
            f"`agentctl login` as {claimed!r}"
        )
    return who


def login(
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Sign in in a browser on this machine (authorization code with PKCE and a "
            "loopback redirect) instead of entering a code on the provider's page.",
        ),
    ] = False,
) -> None:
    """Sign in at the identity provider: what you then start, decide or operate carries
    proof that it is yours."""
    from durable_agents.starters.common import call_sync

    entry = call_sync(login_browser if browser else login_device)
    typer.echo(f"signed in as {entry['subject']} at {entry['issuer']}")


def whoami(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Who this machine is signed in as (for the current Temporal profile)."""
    from durable_agents.starters.common import call_sync

    entry = call_sync(session)
    shown = {
        "subject": entry["subject"],
        "issuer": entry["issuer"],
        "provider": entry["provider"],
        "profile": _profile(),
        "access_expires_at": int(entry["expires_at"]),
    }
    emit(shown, f"{entry['subject']} (issuer {entry['issuer']}, profile {_profile()})", as_json)


def logout() -> None:
    """Sign out: the provider revokes the refresh token, and this machine forgets it."""
    data = _read_store()
    entry = data.pop(_profile(), None)
    if entry is None:
        fail("not signed in (nothing to forget)")
    _write_store(data)
    revoked = _revoke(entry)
    typer.echo("signed out" + ("" if revoked else " (the provider could not be told)"))


def _revoke(entry: dict[str, Any]) -> bool:
    """Ask the provider to revoke the refresh token (RFC 7009), if it says where."""
    import httpx

    endpoint = str(entry.get("token_endpoint", "")).rsplit("/", 1)[0] + "/revoke"
    try:
        found = httpx.get(f"{entry['provider']}/.well-known/openid-configuration", timeout=5)
        endpoint = found.json().get("revocation_endpoint", endpoint)
        answer = httpx.post(
            endpoint,
            data={"token": entry.get("refresh_token", ""), "token_type_hint": "refresh_token"},
            timeout=5,
        )
    except (httpx.HTTPError, ValueError):
        return False
    return answer.status_code == 200


def _idp_call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call to the provider's grant endpoints with the signed-in person's access token."""
    import httpx

    entry = session()
    try:
        answer = httpx.request(
            method,
            f"{entry['provider']}{path}",
            json=body,
            headers={"Authorization": f"Bearer {entry['access_token']}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise RequestError(f"the identity provider did not answer ({exc})") from None
    if answer.status_code != 200:
        try:
            why = answer.json().get("detail", answer.text)
        except ValueError:
            why = answer.text
        raise RequestError(f"the identity provider refused: {str(why)[:300]}")
    found = answer.json()
    return found if isinstance(found, dict) else {}


def grant(
    agent: Annotated[str, typer.Argument(help="The agent (`agentctl agents`).")],
    scope: Annotated[list[str], typer.Option(help="A scope it may use for you (repeatable).")],
) -> None:
    """Let AGENT act for you with these scopes, beyond what you granted it before.

    Its runs for you get tokens for them; starting a run grants what it is started with."""
    from durable_agents.starters.common import call_sync

    done = call_sync(lambda: _idp_call("POST", "/grants", {"agent": agent, "scopes": scope}))
    typer.echo(f"{agent} may now act for you with: {' '.join(done.get('scopes', []))}")


grants_app = typer.Typer(
    invoke_without_command=True, add_completion=False, pretty_exceptions_show_locals=False
)


@grants_app.callback()
def grants(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """What you let each agent do for you; `grants revoke AGENT` takes it back."""
    if ctx.invoked_subcommand is not None:
        return
    from durable_agents.starters.common import call_sync

    found = call_sync(lambda: _idp_call("GET", "/grants"))
    held: dict[str, list[str]] = found.get("grants", {})
    lines = [f"{agent}: {' '.join(scopes)}" for agent, scopes in sorted(held.items())]
    emit(held, "\n".join(lines) or "you have granted no agent anything", as_json)


@grants_app.command("revoke")
def revoke(agent: Annotated[str, typer.Argument(help="The agent.")]) -> None:
    """Take back all you let AGENT do for you.

    Its runs for you park at their next effect, and go on (`agentctl resume RUN`) once you
    grant it again."""
    from durable_agents.starters.common import call_sync

    done = call_sync(lambda: _idp_call("POST", "/grants/revoke", {"agent": agent}))
    if not done.get("revoked"):
        fail(f"you had granted {agent} nothing")
    typer.echo(f"revoked: {agent} may no longer act for you")
