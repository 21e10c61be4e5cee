"""The dependencies handlers use, built once at start-up (the FastAPI lifespan or a CLI command)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.store.db import Store
from bot.store.inbox import Inbox
from bot.store.models import utcnow

if TYPE_CHECKING:
    from bot.github import GitHubAPI
    from bot.metrics import Metrics


class GitHubNotConfigured(RuntimeError):
    """A handler needs GitHub but APP_ID/PRIVATE_KEY are not set."""


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
    # Counters for `/metrics`; None where nothing serves them (the CLI, `kickoff worker`).
    metrics: Metrics | None = None

    def require_github(self) -> GitHubAPI:
        if self.github is None:
            raise GitHubNotConfigured("GitHub is not configured: set APP_ID and PRIVATE_KEY (see `kickoff setup`)")
        return self.github
