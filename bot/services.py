"""The dependencies every feature uses, built once at start-up by the composition root (`bot.root`), for the FastAPI
lifespan and the CLI alike. Per-process state (caches, locks, who Kickoff is) lives on the service objects here,
never in module globals, so two `Services` (two tests, two workers) share nothing. It names only what lies below
it; the feature services above (the queue, the triggers) are on `bot.features.Features`, which handlers receive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.settings import Settings, SettingsError
from bot.store.db import Store
from bot.store.models import utcnow

if TYPE_CHECKING:
    from bot.github import GitHubAPI
    from bot.metrics import Metrics
    from bot.repo_configs import RepoConfigs
    from bot.store.inbox import Inbox
    from bot.store.pulls import PullRequestStore
    from bot.store.runs import RunStore


class GitHubNotConfigured(RuntimeError):
    """A handler needs GitHub but APP_ID/PRIVATE_KEY are not set."""


class StartupError(SettingsError):
    """The service cannot start; the message says why and what to do."""


async def open_store(settings: Settings) -> Store:
    """Open the database; the embedded SQLite default migrates itself, PostgreSQL must be upgraded explicitly."""
    store = Store(settings.database_url)
    try:
        # Checked first without alembic, so opening a current database (every `kickoff status`) never loads it.
        if not await store.is_current():
            if not store.is_sqlite:
                raise StartupError("the database schema is not current: run `kickoff db upgrade` first")
            await store.migrate()
    except StartupError:
        await store.close()
        raise
    except Exception as exc:
        await store.close()
        where = settings.database_url.split("@")[-1]
        raise StartupError(f"DATABASE_URL: cannot open the database at {where}: {exc}") from None
    return store


class IngressLoad:
    """The webhook requests this process is answering. An in-process dispatcher lets them go first: it claims when
    none is in flight, or after a short wait at most, so a flood is acknowledged first and handled in larger
    batches, and a lone delivery is claimed the moment its 202 is on its way."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self._idle.set()

    async def wait_idle(self, at_most: float) -> None:
        if self.in_flight == 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._idle.wait()


@dataclass
class Services:
    settings: Settings
    store: Store
    inbox: Inbox
    github: GitHubAPI | None = None
    clock: Callable[[], datetime] = utcnow
    # Set by the ingress after each stored delivery so an in-process dispatcher wakes at once.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Set whenever runs are planned, finish, or capacity frees, so the scheduler looks again at once.
    runs_changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set whenever a run reaches `succeeded`, so the pull-request opener opens its pull request at once.
    runs_succeeded: asyncio.Event = field(default_factory=asyncio.Event)
    # Webhook requests in flight in this process (the ingress counts them; the dispatcher defers to them).
    ingress: IngressLoad = field(default_factory=IngressLoad)
    # The `workers` row this process's worker registered (bot.worker's `Membership`), named by every claim it takes;
    # None where no worker runs (the CLI's one-shot commands, a `kickoff serve --no-worker`, tests without one).
    worker_id: int | None = None
    # Counters for `/metrics`; None where nothing serves them (the CLI, `kickoff worker`).
    metrics: Metrics | None = None
    # The stores and the config service, built on these by `bot.root.compose` (so they come after them).
    runs: RunStore = field(init=False, repr=False)
    pulls: PullRequestStore = field(init=False, repr=False)
    configs: RepoConfigs = field(init=False, repr=False)

    def require_github(self) -> GitHubAPI:
        if self.github is None:
            raise GitHubNotConfigured("GitHub is not configured: set APP_ID and PRIVATE_KEY (see `kickoff setup`)")
        return self.github
