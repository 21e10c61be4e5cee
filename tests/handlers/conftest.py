"""Fixtures for the trigger handlers: a harness per test on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.handlers.harness import Harness, harness


@pytest.fixture
async def h(database_url: str) -> AsyncIterator[Harness]:
    async with harness(database_url) as world:
        yield world


@pytest.fixture
async def hs(sqlite_url: str) -> AsyncIterator[Harness]:
    """SQLite only: for the large parametrized matrices."""
    async with harness(sqlite_url) as world:
        yield world
