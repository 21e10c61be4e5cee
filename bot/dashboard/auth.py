"""The dashboard's gate: DASHBOARD_TOKEN as a bearer header, or a login form that sets an HttpOnly cookie.

The token is mandatory once PUBLIC_URL is not on localhost: without it the dashboard and its JSON answer 503 and say
why, while the webhook ingress, health and metrics go on working. The cookie holds an HMAC of the token, never the
token itself; both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from bot.settings import Settings

COOKIE: Final = "kickoff_dashboard"
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_SESSION_CONTEXT: Final = b"kickoff dashboard session v1"


class Access(Enum):
    ALLOWED = "allowed"
    LOGIN = "login"  # a token is set and the request does not carry it
    UNSAFE = "unsafe"  # no token, and the dashboard would be public


def is_local(public_url: str) -> bool:
    host = (urlsplit(public_url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def unsafe_message(settings: Settings) -> str:
    return (
        f"The dashboard is off: PUBLIC_URL ({settings.public_url}) is not on localhost and DASHBOARD_TOKEN is not "
        "set, so anyone could read it. Set DASHBOARD_TOKEN to a long random string (e.g. `openssl rand -hex 32`) "
        "and restart Kickoff."
    )


def session_value(token: str) -> str:
    """What the login cookie holds: an HMAC of the token, so the cookie alone never reveals it."""
    return hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: str, settings: Settings) -> bool:
    if settings.dashboard_token is None:
        return False
    expected = settings.dashboard_token.get_secret_value()
    return hmac.compare_digest(given.encode(), expected.encode())


def access(request: Request, settings: Settings) -> Access:
    if settings.dashboard_token is None:
        return Access.ALLOWED if is_local(settings.public_url) else Access.UNSAFE
    expected = settings.dashboard_token.get_secret_value()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected.encode()):
        return Access.ALLOWED
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), session_value(expected).encode()):
        return Access.ALLOWED
    return Access.LOGIN


def require_viewer(request: Request, settings: Settings) -> None:
    """For the JSON endpoints: 503 when the dashboard may not be served, 401 without the token."""
    found = access(request, settings)
    if found is Access.UNSAFE:
        raise HTTPException(503, unsafe_message(settings))
    if found is Access.LOGIN:
        raise HTTPException(401, "a dashboard token is required", headers={"WWW-Authenticate": "Bearer"})


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")
