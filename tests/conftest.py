"""Shared fixtures: databases (SQLite and the PostgreSQL server)."""

from __future__ import annotations

from collections.abc import Iterator
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
