"""Fixtures for the dashboard's tests: a seeded database, a real Kickoff server on it, and headless Chromium."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.services import open_store
from bot.settings import Settings
from bot.store.db import Store
from bot.store.models import utcnow
from bot.web import create_app
from tests.dashboard.outcome_history import seed_outcomes
from tests.dashboard.scenario import Seeded, seed
from tests.support import ServerThread, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
TOKEN = "dashboard-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def kickoff_env(**env: str) -> dict[str, str]:
    """The environment of a `kickoff` command run as a user does: only the given settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KICKOFF_", "GITHUB_")) and k not in {
        "WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "DATABASE_URL", "DASHBOARD_TOKEN", "PUBLIC_URL"
    }}
    return {**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env}


def kickoff(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `kickoff` command as a user does, with only the given settings."""
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False, env=kickoff_env(**env))


def on_store(database_url: str, action: Callable[[Store], Any]) -> Any:
    """Run `action(store)` on a store of its own, from sync test code (in a thread: Playwright's sync API keeps an
    event loop running on this one)."""

    async def main() -> Any:
        store = Store(database_url)
        try:
            return await action(store)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    async def main() -> Seeded:
        store = await open_store(make_settings(database_url))  # migrates a SQLite file
        try:
            return await seed(store, utcnow())
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.fixture
def history(database_url: str) -> str:
    """The known history, relative to the real clock (the server reads it), in `database_url`."""
    async def main() -> None:
        store = await open_store(make_settings(database_url))  # migrates a SQLite file
        try:
            await seed_outcomes(store, utcnow())
        finally:
            await store.close()

    asyncio.run(main())
    return database_url


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], ServerThread]]:
    """Start Kickoff (no dispatcher) with the given settings; stopped after the test."""
    started: list[ServerThread] = []

    def start(settings: Settings) -> ServerThread:
        server = ServerThread(create_app(settings, run_worker=False))
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extras)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
