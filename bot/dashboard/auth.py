"""The gate of the operator's HTTP surfaces: the dashboard, its JSON and the operator API (DASHBOARD_TOKEN), and
`/metrics` (METRICS_TOKEN).

A token goes as a bearer header; the dashboard also takes a login form that sets an HttpOnly cookie holding an
HMAC of the token (never the token itself); every comparison is constant-time. Without its token a surface is
served only to a *local request*: the server listens on a loopback address (settings.host, written by `kickoff
serve` from its --host) and the TCP peer is a loopback address, with no proxy header on the request. The peer is
the socket's, never X-Forwarded-For: a proxy on this machine (nginx, a tunnel's agent) connects from loopback on
behalf of anyone, which is why a forwarded request is never local. The dashboard also needs PUBLIC_URL on
localhost, as before: a public PUBLIC_URL means something forwards the world to this server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from bot import messages
from bot.settings import Settings

COOKIE: Final = "kickoff_dashboard"
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_SESSION_CONTEXT: Final = b"kickoff dashboard session v1"
# Headers a reverse proxy or tunnel adds; their presence says the real client is somewhere else.
_FORWARDING: Final = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "x-forwarded-proto")


class Access(Enum):
    ALLOWED = "allowed"
    LOGIN = "login"  # a token is set and the request does not carry it
    UNSAFE = "unsafe"  # no token, and the request is not a local one


def is_local(public_url: str) -> bool:
    host = (urlsplit(public_url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is a loopback address; names other than localhost are not."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def bound_to_loopback(settings: Settings) -> bool:
    return is_loopback(settings.host)


def local_request(request: Request, settings: Settings) -> bool:
    """Straight from this machine to a loopback-bound server, through no proxy."""
    if not bound_to_loopback(settings):
        return False
    client = request.client
    if client is None or not is_loopback(client.host):
        return False
    headers = request.headers
    return not any(name in headers for name in _FORWARDING)


def unsafe_message(settings: Settings) -> str:
    return messages.DASHBOARD_LOCKED.format(host=settings.host, public_url=settings.public_url)


def session_value(token: str) -> str:
    """What the login cookie holds: an HMAC of the token, so the cookie alone never reveals it."""
    return hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: str, settings: Settings) -> bool:
    if settings.dashboard_token is None:
        return False
    expected = settings.dashboard_token.get_secret_value()
    return hmac.compare_digest(given.encode(), expected.encode())


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def access(request: Request, settings: Settings) -> Access:
    if settings.dashboard_token is None:
        local = local_request(request, settings) and is_local(settings.public_url)
        return Access.ALLOWED if local else Access.UNSAFE
    expected = settings.dashboard_token.get_secret_value()
    given = _bearer(request)
    if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
        return Access.ALLOWED
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), session_value(expected).encode()):
        return Access.ALLOWED
    return Access.LOGIN


def require_viewer(request: Request, settings: Settings) -> None:
    """For the JSON endpoints: 401 without the token, and without DASHBOARD_TOKEN for any request not local."""
    found = access(request, settings)
    if found is Access.UNSAFE:
        raise HTTPException(401, unsafe_message(settings), headers={"WWW-Authenticate": "Bearer"})
    if found is Access.LOGIN:
        raise HTTPException(401, messages.DASHBOARD_LOGIN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})


def require_scraper(request: Request, settings: Settings) -> None:
    """For `/metrics`: the bearer METRICS_TOKEN when one is set, else a local request (see the module's text)."""
    if settings.metrics_token is None:
        if local_request(request, settings):
            return
    else:
        given = _bearer(request)
        expected = settings.metrics_token.get_secret_value()
        if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
            return
    raise HTTPException(401, messages.METRICS_LOCKED, headers={"WWW-Authenticate": "Bearer"})


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")
