"""Shared fixtures: databases (SQLite and the PostgreSQL server)."""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import POSTGRES, postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/kickoff.db"
        return
    if not POSTGRES:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/services starts it)")
    yield from postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/kickoff.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/services starts it)")
    yield from postgres_database()


@pytest.fixture
async def _collect_garbage_on_the_test_loop() -> AsyncIterator[None]:
    """After an async test, collect garbage while its event loop still runs. An asyncpg connection a test left
    checked out (a task cancelled mid-query, a session not closed) is then closed on its own loop, its leak
    reported against that test; otherwise the collector found it during a later test, whose loop it does not
    belong to, and failed that unrelated test with an unraisable "unclosed socket" or "attached to a different
    loop" warning."""
    yield
    gc.collect()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.insert(0, "_collect_garbage_on_the_test_loop")
