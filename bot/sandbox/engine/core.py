"""The sandbox's core: the shared state, per-repository locks, background work and event emission.

All methods run on the engine loop. Each resource (`identity`, `repos`, `webhooks`, `issues`, `pulls`, `checks`,
`ci`) owns its behaviour in its own module and reaches the others through this engine. REST handlers
(`bot.sandbox.routes`), the git endpoint (`githttp.py`), the HTTP control endpoints and the Python control API
(`Sandbox`) all call these, so a label added through any of them emits the same webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

from bot.sandbox import payloads as P
from bot.sandbox.budget import RateLimits
from bot.sandbox.clock import Clock
from bot.sandbox.engine.base import Json, Violation
from bot.sandbox.engine.checks import Checks
from bot.sandbox.engine.ci import Ci
from bot.sandbox.engine.identity import Identity
from bot.sandbox.engine.issues import Issues
from bot.sandbox.engine.pulls import Pulls
from bot.sandbox.engine.repos import Repos
from bot.sandbox.engine.webhooks import Webhooks
from bot.sandbox.errors import not_found
from bot.sandbox.git import BareRepo
from bot.sandbox.state import EVENT_PERMISSION, Repo, RequestRecord, State, User
from bot.sandbox.webhooks import Outbox

WebhookValidator = Callable[[str, str | None, Json], list[str]]


class Engine:
    """State plus behaviour. Not thread-safe: use it from the engine loop only."""

    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        retry_delays: tuple[float, ...] = (0.1, 0.5, 2.0),
        webhook_timeout: float = 10.0,
    ) -> None:
        self.root = root
        self.repos_root = root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.state = State()
        self.urls = P.Urls("http://sandbox.invalid", "http://sandbox.invalid")
        self.outbox = Outbox(
            clock=clock, lookup_app=self.state.apps.get, retry_delays=retry_delays, timeout=webhook_timeout
        )
        self.requests: list[RequestRecord] = []
        self.rate_limits = RateLimits(clock)
        self.violations: list[Violation] = []
        self.unimplemented: list[str] = []
        self.webhook_validator: WebhookValidator | None = None
        self._repo_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.ghost = self.user("ghost")
        self.identity = Identity(self)
        self.repos = Repos(self)
        self.webhooks = Webhooks(self)
        self.issues = Issues(self)
        self.pulls = Pulls(self)
        self.checks = Checks(self)
        self.ci = Ci(self)

    def verb(self, name: str) -> Callable[..., Any]:
        """The control verb `name`, on the engine or on whichever resource owns it (for `Sandbox`)."""
        for owner in (self, self.identity, self.repos, self.webhooks, self.issues, self.pulls, self.checks, self.ci):
            if hasattr(type(owner), name):
                found: Callable[..., Any] = getattr(owner, name)
                return found
        raise AttributeError(name)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` in the background on the engine loop; `aclose` cancels whatever is still running."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def user(self, login: str, *, kind: Literal["User", "Bot", "Organization"] | None = None) -> User:
        """The user with this login, created on first mention (`…[bot]` logins are bots)."""
        found = self.state.user(login)
        if found is not None:
            return found
        if kind is None:
            kind = "Bot" if login.endswith("[bot]") else "User"
        created = User(self.state.ids.next("user"), login, kind)
        self.state.users[login.lower()] = created
        return created

    def repo_lock(self, repo: Repo) -> asyncio.Lock:
        lock = self._repo_locks.get(repo.id)
        if lock is None:
            lock = self._repo_locks[repo.id] = asyncio.Lock()
        return lock

    def git(self, repo: Repo) -> BareRepo:
        return BareRepo(repo.path)

    def find_repo(self, owner: str, name: str) -> Repo:
        repo = self.state.repo(owner, name)
        if repo is None:
            raise not_found()
        return repo

    def emit(
        self,
        event: str,
        action: str | None,
        repo: Repo | None,
        body: Json,
        sender: User,
        *,
        only_app: int | None = None,
        keep_repository: bool = False,
    ) -> None:
        """Announce a change to every App installed on the repository that subscribes to the event."""
        if repo is None:
            return
        for inst in list(self.state.installations.values()):
            if not self.identity.installation_covers(inst, repo):
                continue
            app = self.state.apps[inst.app_id]
            if only_app is not None and app.id != only_app:
                continue
            if event not in inst.events and event not in app.events:
                continue
            needed = EVENT_PERMISSION.get(event, ())
            if needed and not any(inst.permissions.get(p) in ("read", "write", "admin") for p in needed):
                continue
            self.webhooks.deliver(app, inst, event, action, body, sender, repo, keep_repository=keep_repository)

    @property
    def busy(self) -> bool:
        """Webhooks still to send (unless paused) or CI still running."""
        return self.ci.running > 0 or (self.outbox.pending > 0 and not self.outbox.paused)

    async def wait_idle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a deadline over many polls
        """Return once no webhook is pending (held ones while paused do not count) and no CI runs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < 2:
            if self.busy:
                quiet = 0
            else:
                quiet += 1
            if loop.time() > deadline:
                raise TimeoutError(
                    f"sandbox still busy after {timeout}s: {self.outbox.pending} webhooks, {self.ci.running} CI runs"
                )
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.outbox.aclose()
