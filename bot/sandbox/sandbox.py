"""`Sandbox`: the Python control API of the GitHub simulator.

A Sandbox owns an engine loop in a background thread; its state, the HTTP server, the webhook outbox and CI all
live there. Every control verb exists twice: `sandbox.open_issue(...)` blocks until done (sync fixtures, scripts),
`await sandbox.aio.open_issue(...)` awaits it from any other event loop (async tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from bot.sandbox.clock import Clock, system_clock
from bot.sandbox.conformance import Conformance
from bot.sandbox.engine import AppCredentials, Engine, Violation
from bot.sandbox.engine.checks import Checks
from bot.sandbox.engine.ci import Ci
from bot.sandbox.engine.identity import Identity
from bot.sandbox.engine.issues import Issues
from bot.sandbox.engine.pulls import Pulls
from bot.sandbox.engine.repos import Repos
from bot.sandbox.state import Delivery, RequestRecord

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.sandbox.server import SandboxServer

Params = ParamSpec("Params")
R = TypeVar("R")
# The verbs live on the engine or on one of its resources, so the bound object varies.
EngineVerb = Callable[Concatenate[Any, Params], Coroutine[Any, Any, R]]


def _sync(verb: EngineVerb[Params, R]) -> Callable[Concatenate[Sandbox, Params], R]:
    name = verb.__name__

    def call(self: Sandbox, /, *args: Params.args, **kwargs: Params.kwargs) -> R:
        method: Callable[Params, Coroutine[Any, Any, R]] = self.engine.verb(name)
        return self.run(method(*args, **kwargs))

    call.__name__ = name
    call.__doc__ = verb.__doc__
    return call


def _async(verb: EngineVerb[Params, R]) -> Callable[Concatenate[AsyncSandbox, Params], Coroutine[Any, Any, R]]:
    name = verb.__name__

    async def call(self: AsyncSandbox, /, *args: Params.args, **kwargs: Params.kwargs) -> R:
        method: Callable[Params, Coroutine[Any, Any, R]] = self.sandbox.engine.verb(name)
        return await self.sandbox.arun(method(*args, **kwargs))

    call.__name__ = name
    call.__doc__ = verb.__doc__
    return call


class Sandbox:
    """A stateful GitHub: Apps, installations, real git repositories, issues, PRs, checks, webhooks, CI.

    `root` holds the bare repositories. `clock` (default: the wall clock) drives token and code expiry and all
    timestamps. `retry_delays` are the waits before each webhook retry (empty: no retries). With `fidelity`,
    requests, responses and webhooks are checked against GitHub's description (`bot.sandbox.fidelity`).
    """

    def __init__(
        self,
        root: Path | str,
        clock: Clock | None = None,
        *,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0),
        webhook_timeout: float = 10.0,
        fidelity: bool = True,
        strict: bool = True,
    ) -> None:
        self.root = Path(root)
        self.clock: Clock = clock or system_clock
        self.engine = Engine(self.root, self.clock, retry_delays=retry_delays, webhook_timeout=webhook_timeout)
        self.conformance = Conformance(enabled=fidelity, strict=strict)
        if self.conformance.active:
            self.engine.webhook_validator = self.conformance.check_webhook
        self.servers: list[SandboxServer] = []
        self._asgi: FastAPI | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-engine", daemon=True)
        self._thread.start()
        self.aio = AsyncSandbox(self)

    def run(self, coro: Coroutine[Any, Any, R], timeout: float | None = 120.0) -> R:
        """Run a coroutine on the engine loop and wait for it (not from the engine loop itself)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("Sandbox.run called on the engine loop; await the engine method instead")
        if self._closed:
            coro.close()
            raise RuntimeError("the sandbox is closed")
        future: Future[R] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, R]) -> R:
        """Await a coroutine that runs on the engine loop, from another event loop."""
        if self._closed:
            coro.close()
            raise RuntimeError("the sandbox is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    @property
    def asgi(self) -> FastAPI:
        """The ASGI app (REST + git + control + manifest page), built on first use."""
        if self._asgi is None:
            from bot.sandbox.server import build_asgi

            self._asgi = build_asgi(self.engine, self.conformance)
        return self._asgi

    def close(self) -> None:
        """Stop servers, cancel CI and pending webhooks, stop the engine loop. Idempotent."""
        if self._closed:
            return
        for server in list(self.servers):
            server.stop()
        self.run(self.engine.aclose())
        self.run(self._loop.shutdown_asyncgens())
        self.run(self._loop.shutdown_default_executor())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL of the running server (GITHUB_API_URL for the App)."""
        return self.engine.urls.api

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served: method, path, status, installation/app/actor, kind (rest, git, control, web)."""
        return list(self.engine.requests)

    @property
    def violations(self) -> list[Violation]:
        """Requests, responses and webhooks that do not match GitHub's description, and sandbox crashes."""
        return list(self.engine.violations)

    def take_violations(self) -> list[Violation]:
        """Return and forget the violations so far (for tests that send bad requests on purpose)."""
        found = list(self.engine.violations)
        self.engine.violations.clear()
        return found

    def deliveries(self, app_id: int | None = None) -> list[Delivery]:
        """Webhook deliveries so far, oldest first, with status, status_code, attempts and the exact body."""
        return sorted(self.engine.webhooks.deliveries(app_id), key=lambda d: d.id)

    def pause_webhooks(self, *, drop: bool = False) -> None:
        """Hold webhooks (sent on resume), or with `drop` fail each one as undeliverable (Kickoff down)."""
        self._loop.call_soon_threadsafe(lambda: self.engine.outbox.pause(drop=drop))

    def resume_webhooks(self) -> None:
        self._loop.call_soon_threadsafe(self.engine.outbox.resume)

    # Control verbs: each runs the method of the same name on the engine resource named here.

    create_app = _sync(Identity.create_app)
    set_webhook = _sync(Identity.set_webhook)
    install = _sync(Identity.install)
    installation_token = _sync(Identity.installation_token)
    tokens = _sync(Identity.tokens)
    user_token = _sync(Identity.user_token)
    create_repo = _sync(Repos.create_repo)
    set_permission = _sync(Repos.set_permission)
    set_ci = _sync(Ci.set_ci)
    protect_branch = _sync(Repos.protect_branch)
    push_commit = _sync(Repos.push_commit)
    open_issue = _sync(Issues.open_issue)
    close_issue = _sync(Issues.close_issue)
    add_label = _sync(Issues.add_label)
    remove_label = _sync(Issues.remove_label)
    comment = _sync(Issues.comment)
    edit_comment_as = _sync(Issues.edit_comment_as)
    react = _sync(Issues.react)
    open_pull = _sync(Pulls.open_pull)
    set_draft = _sync(Pulls.set_draft)
    approve = _sync(Pulls.approve)
    review = _sync(Pulls.review)
    review_decision = _sync(Pulls.review_decision)
    merge_pull = _sync(Pulls.merge_pull)
    request_check_run_action = _sync(Checks.request_check_run_action)
    wait_idle = _sync(Engine.wait_idle)


class AsyncSandbox:
    """The same control verbs as `Sandbox`, awaitable from any event loop."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    create_app = _async(Identity.create_app)
    set_webhook = _async(Identity.set_webhook)
    install = _async(Identity.install)
    installation_token = _async(Identity.installation_token)
    tokens = _async(Identity.tokens)
    user_token = _async(Identity.user_token)
    create_repo = _async(Repos.create_repo)
    set_permission = _async(Repos.set_permission)
    set_ci = _async(Ci.set_ci)
    protect_branch = _async(Repos.protect_branch)
    push_commit = _async(Repos.push_commit)
    open_issue = _async(Issues.open_issue)
    close_issue = _async(Issues.close_issue)
    add_label = _async(Issues.add_label)
    remove_label = _async(Issues.remove_label)
    comment = _async(Issues.comment)
    edit_comment_as = _async(Issues.edit_comment_as)
    react = _async(Issues.react)
    open_pull = _async(Pulls.open_pull)
    set_draft = _async(Pulls.set_draft)
    approve = _async(Pulls.approve)
    review = _async(Pulls.review)
    review_decision = _async(Pulls.review_decision)
    merge_pull = _async(Pulls.merge_pull)
    request_check_run_action = _async(Checks.request_check_run_action)
    wait_idle = _async(Engine.wait_idle)


__all__ = ["AppCredentials", "AsyncSandbox", "Sandbox"]
