"""A person of the sim world at the identity provider's pages, as a program drives them: for
`agentctl demo` (which signs in as the people it plays) and the tests. It reads the person's
password from the file the sim wrote, opens the sign-in page, posts the form with its CSRF
token, and answers the consent page, as a browser would.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from sim.people import PEOPLE_FILE


def password(state_dir: Path, person: str) -> str:
    """The person's password, as the sim wrote it beside its database."""
    return str(tomllib.loads((state_dir / PEOPLE_FILE).read_text())[person])


def _field(html: str, name: str) -> str:
    found = re.search(rf"name='{name}' value='([^']*)'", html)
    if found is None:
        raise ValueError(f"no {name} field in the page: {html[:300]}")
    return found.group(1)


def approve_device(
    base: str, user_code: str, person: str, secret: str, allow: bool = True
) -> httpx.Response:
    """Sign in on the provider's pages for a device's code and answer its consent page; the
    last page's response (200 once signed in)."""
    with httpx.Client(base_url=base, timeout=10) as browser:
        form = browser.get("/idp/device", params={"user_code": user_code})
        form.raise_for_status()
        consent = browser.post(
            "/idp/device",
            data={
                "csrf": _field(form.text, "csrf"),
                "user_code": user_code,
                "username": person,
                "password": secret,
            },
        )
        if consent.status_code != 200:
            return consent
        return browser.post(
            "/idp/device/consent",
            data={
                "csrf": _field(consent.text, "csrf"),
                "ticket": _field(consent.text, "ticket"),
                "decision": "allow" if allow else "deny",
            },
        )


def approve_authorization(url: str, person: str, secret: str, allow: bool = True) -> httpx.Response:
    """Open an authorization request's URL as a browser would, sign in, answer the consent
    page, and follow the provider's redirect to the application; the last response."""
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        form = browser.get(url)
        if form.status_code != 200:
            return form
        base = url.split("/idp/authorize", 1)[0]
        consent = browser.post(
            f"{base}/idp/authorize",
            data={
                "csrf": _field(form.text, "csrf"),
                "request": _field(form.text, "request"),
                "username": person,
                "password": secret,
            },
        )
        if consent.status_code != 200:
            return consent
        return browser.post(
            f"{base}/idp/authorize/consent",
            data={
                "csrf": _field(consent.text, "csrf"),
                "ticket": _field(consent.text, "ticket"),
                "decision": "allow" if allow else "deny",
            },
        )
