"""GitHub's request budget, as the sandbox keeps it: ETags and `304 Not Modified`, and the primary rate limit.

Like GitHub, every successful `GET` of the REST API carries an `ETag` (a weak validator of its body); a request whose
`If-None-Match` names the current one is answered `304 Not Modified` with no body, and — GitHub's fine print — does
not count against the primary rate limit. Every other request does: the `x-ratelimit-*` headers of each response say
what is left of the hour's budget of whoever asked (an installation's tokens share one budget, the App's JWT has its
own). The sandbox only reports the budget; it never refuses a request for it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.sandbox.auth import Principal
from bot.sandbox.clock import Clock

RATE_LIMIT = 5000
"""Requests an hour for an installation or an App's JWT (GitHub's floor for an installation)."""
WINDOW = timedelta(hours=1)

BudgetKey = tuple[str, int]
"""("installation", id) or ("app", id): who a request is counted against."""


@dataclass
class Budget:
    """One hour's window of one installation's (or App's) requests."""

    limit: int
    reset_at: datetime
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class RateLimits:
    """The budgets of every installation and App; `limit` is what a fresh window allows."""

    def __init__(self, clock: Clock, limit: int = RATE_LIMIT) -> None:
        self.clock = clock
        self.limit = limit
        self.budgets: dict[BudgetKey, Budget] = {}

    def budget(self, key: BudgetKey) -> Budget:
        now = self.clock()
        found = self.budgets.get(key)
        if found is None or now >= found.reset_at:
            found = self.budgets[key] = Budget(self.limit, now + WINDOW)
        return found

    def headers(self, key: BudgetKey, *, counted: bool) -> list[tuple[bytes, bytes]]:
        budget = self.budget(key)
        if counted:
            budget.used += 1
        values = {
            "x-ratelimit-limit": budget.limit,
            "x-ratelimit-remaining": budget.remaining,
            "x-ratelimit-used": budget.used,
            "x-ratelimit-reset": math.ceil(budget.reset_at.timestamp()),
        }
        pairs = [(k.encode(), str(v).encode()) for k, v in values.items()]
        return [*pairs, (b"x-ratelimit-resource", b"core")]


def budget_key(principal: object) -> BudgetKey | None:
    if not isinstance(principal, Principal):
        return None
    if principal.installation is not None:
        return ("installation", principal.installation.id)
    if principal.app is not None:
        return ("app", principal.app.id)
    return None


def _is_rest(path: str) -> bool:
    """As `conformance.is_rest_path`: not the control API, the web pages or git's smart HTTP."""
    return not path.startswith("/_sandbox/") and not path.endswith("/settings/apps/new") and ".git/" not in path


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison: `*`, or any listed tag equal once `W/` is dropped."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


class BudgetMiddleware:
    """ASGI middleware (outside the conformance checks, which see the full `200`): ETags, 304s, rate-limit headers."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_rest(scope["path"]):
            await self.app(scope, receive, send)
            return
        conditional = scope["method"] == "GET"
        free = scope["path"] == "/rate_limit"  # GitHub: asking what is left does not count
        if_none_match = ""
        for key, value in scope.get("headers", []):
            if key.lower() == b"if-none-match":
                if_none_match = value.decode("latin-1")
        start: Message | None = None
        chunks: list[bytes] = []

        def principal_key() -> BudgetKey | None:
            return budget_key(scope.get("state", {}).get("principal"))

        async def respond(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if conditional and message["status"] == 200:
                    start = message  # held until the body is whole: its ETag is the body's
                    return
                key = principal_key()
                if key is not None:
                    budget = self.limits.headers(key, counted=not free)
                    message = {**message, "headers": [*message.get("headers", []), *budget]}
                await send(message)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._finish(start, b"".join(chunks), if_none_match, principal_key(), send, free=free)
                return
            await send(message)

        await self.app(scope, receive, respond)

    async def _finish(
        self, start: Message, body: bytes, if_none_match: str, key: BudgetKey | None, send: Send, *, free: bool
    ) -> None:
        etag = etag_of(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"etag"]
        not_modified = bool(if_none_match) and _matches(if_none_match, etag)
        budget = self.limits.headers(key, counted=not (not_modified or free)) if key is not None else []
        if not_modified:
            kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
            await send({"type": "http.response.start", "status": 304,
                        "headers": [*kept, (b"etag", etag.encode()), *budget]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({**start, "headers": [*headers, (b"etag", etag.encode()), *budget]})
        await send({"type": "http.response.body", "body": body})


__all__ = ["RATE_LIMIT", "Budget", "BudgetMiddleware", "RateLimits", "budget_key", "etag_of"]
