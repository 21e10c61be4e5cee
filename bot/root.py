"""The composition root: the one place a process's objects are built and wired, the same for `kickoff serve` (the
FastAPI lifespan in bot.web), the CLI's commands and the tests: the store, the gateway, the stores, the repo-config
service (on `Services`), the queue and the triggers services (on `Features`, which handlers receive), and the
routers of events and of `/agent` verbs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import OperatorPolicy
from bot.features import Features
from bot.github import GitHubAPI, GitHubGateway
from bot.handlers import root_router
from bot.queue.service import QueueService
from bot.repo_configs import RepoConfigs
from bot.routing import Router
from bot.services import open_store
from bot.settings import Settings
from bot.store.db import Store
from bot.store.inbox import Inbox
from bot.store.models import utcnow
from bot.store.pulls import PullRequestStore
from bot.store.runs import RunStore
from bot.triggers import Triggers

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)


def build_gateway(settings: Settings) -> GitHubGateway | None:
    """The real gateway when the App's credentials are set; without them Kickoff can only receive and store."""
    if settings.app_id is None and settings.private_key is None and settings.private_key_path is None:
        log.warning("APP_ID and PRIVATE_KEY are not set: deliveries are stored but nothing can reach GitHub")
        return None
    return GitHubGateway.from_settings(settings)


def compose(
    settings: Settings,
    store: Store,
    *,
    github: GitHubAPI | None = None,
    clock: Callable[[], datetime] = utcnow,
    metrics: Metrics | None = None,
) -> Features:
    """`Features` with its stores and services built on it: runs and pull requests, the one config loader and
    cache, the queue, the triggers."""
    services = Features(settings=settings, store=store, inbox=Inbox(store), github=github, clock=clock,
                        metrics=metrics)
    services.runs = RunStore(store, clock=clock, succeeded=services.runs_succeeded)
    services.pulls = PullRequestStore(store, clock=clock,
                                      worker_timeout=timedelta(seconds=settings.workers.timeout_seconds))
    services.configs = RepoConfigs(services.require_github, OperatorPolicy.from_settings(settings))
    services.queue = QueueService(services)
    services.triggers = Triggers(services)
    return services


def router(settings: Settings) -> Router[Features]:
    """The root router of events (the `/agent` verbs' router inside it), with the operator's plugins."""
    return root_router(settings.plugins)


@asynccontextmanager
async def running(
    settings: Settings, *, github: GitHubAPI | None = None, metrics: Metrics | None = None
) -> AsyncIterator[Features]:
    """The process's `Features` over an opened store and (unless `github` replaces it) the real gateway; what it
    opened is closed on the way out."""
    store = await open_store(settings)
    gateway = build_gateway(settings) if github is None else None
    try:
        yield compose(settings, store, github=github or gateway, metrics=metrics)
    finally:
        if gateway is not None:
            await gateway.aclose()
        await store.close()
