"""Hold the sandbox to GitHub's own description: every REST request and response, every webhook it sends.

Uses `bot.sandbox.fidelity` when it is importable (it is optional: without it nothing is checked). A request that
names no GitHub operation is answered 404 and recorded as a violation; request and response bodies that do not
match the operation's schemas are recorded. Tests assert `sandbox.violations == []`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.sandbox.engine import Engine, Violation
from bot.sandbox.errors import ApiError

Json = dict[str, Any]


class _Operation(Protocol):
    operation_id: str


class _RestSpec(Protocol):
    def match(self, method: str, path: str) -> Any: ...

    def validate_request(self, op: Any, body: Any = ..., *, strict: bool = ...) -> list[str]: ...

    def validate_response(
        self, op: Any, status: int, body: Any = ..., *, content_type: str | None = ..., strict: bool = ...
    ) -> list[str]: ...


class _WebhookSpec(Protocol):
    def validate(self, event: str, action: str | None, payload: Any, *, strict: bool = ...) -> list[str]: ...


def is_rest_path(path: str) -> bool:
    """Everything except the control API, the web pages and git's smart HTTP is GitHub's REST API."""
    if path.startswith("/_sandbox/") or path.endswith("/settings/apps/new"):
        return False
    return ".git/" not in path


class Conformance:
    """The loaded descriptions (or nothing, when `bot.sandbox.fidelity` is absent or disabled)."""

    def __init__(self, *, enabled: bool = True, strict: bool = True) -> None:
        self.strict = strict
        self.rest: _RestSpec | None = None
        self.webhooks: _WebhookSpec | None = None
        self.route: Callable[[str, str], Any] | None = None
        if not enabled:
            return
        try:
            fidelity = importlib.import_module("bot.sandbox.fidelity")
        except ImportError:
            return
        self.rest = fidelity.load_rest_spec()
        self.webhooks = fidelity.load_webhooks_spec()
        self.route = getattr(self.rest, "route", None)

    @property
    def active(self) -> bool:
        return self.rest is not None

    def check_webhook(self, event: str, action: str | None, payload: Json) -> list[str]:
        if self.webhooks is None:
            return []
        return self.webhooks.validate(event, action, payload, strict=self.strict)


class ConformanceMiddleware:
    """ASGI middleware: 404 for requests GitHub would not route, schema checks on both bodies."""

    def __init__(self, app: ASGIApp, engine: Engine, conformance: Conformance) -> None:
        self.app = app
        self.engine = engine
        self.conformance = conformance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = self.conformance.rest
        if scope["type"] != "http" or spec is None or not is_rest_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        where = f"{method} {path}"
        op = spec.match(method, path)
        if op is None:
            known = self.conformance.route(method, path) if self.conformance.route else None
            if known is None:
                self.engine.violations.append(Violation(where, ["no GitHub REST operation has this method and path"]))
                await _send_json(send, ApiError(404, "Not Found").body(), 404)
                return
            # A real operation whose schemas are not vendored: serve it, note that it went unchecked.
            self.engine.unimplemented.append(f"unchecked {known.operation_id}: {where}")
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problems: list[str] = []
        if body.strip() and _is_json(body):
            problems += spec.validate_request(op, body, strict=self.conformance.strict)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 0
        content_type = ""
        out: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        response = b"".join(out)
        if status and (status >= 400 or "json" in content_type or not response):
            found = spec.validate_response(
                op,
                status,
                response if response.strip() else None,
                content_type=content_type or None,
                strict=self.conformance.strict,
            )
            if status >= 400 and _is_basic_error(response):
                # GitHub answers every error with {"message", "documentation_url"}, also where its description
                # documents the status without a body (e.g. 422 of pulls/request-reviewers).
                found = [p for p in found if "has no documented body" not in p]
            problems += found
        if problems:
            self.engine.violations.append(Violation(where, problems))


def _is_basic_error(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("message"), str) and "documentation_url" in data


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


async def _send_json(send: Send, body: Json, status: int) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
