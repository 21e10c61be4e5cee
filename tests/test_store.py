"""The store: URLs people write, migrations, readiness, the inbox's edge cases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.store.db import DatabaseURLError, Store, async_database_url, head_revision
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import utcnow
from bot.web import create_app
from tests.support import ServerThread, make_settings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./kickoff.db", "sqlite+aiosqlite:///./kickoff.db"),
        ("sqlite:////var/lib/kickoff.db", "sqlite+aiosqlite:////var/lib/kickoff.db"),
        ("postgres://u:p@db:5432/k", "postgresql+asyncpg://u:p@db:5432/k"),
        ("postgresql://u@db/k", "postgresql+asyncpg://u@db/k"),
        ("postgresql+psycopg://u@db/k", "postgresql+asyncpg://u@db/k"),
        ("postgres://u@db/k?sslmode=require", "postgresql+asyncpg://u@db/k?ssl=require"),
    ],
)
def test_database_urls_pick_the_async_driver(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://x/y", "nonsense", "redis://localhost"])
def test_unsupported_database_urls_are_refused(bad: str) -> None:
    with pytest.raises(DatabaseURLError):
        async_database_url(bad)


async def test_migrations_reach_head_and_are_idempotent(database_url: str) -> None:
    store = Store(database_url)
    try:
        await store.migrate()
        await store.migrate()
        assert await store.current_revision() == head_revision()
        assert await store.is_current()
    finally:
        await store.close()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/k.db")
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        assert mode == "wal"
    finally:
        await store.close()


async def test_inbox_insert_reports_only_new_ids_and_keeps_the_first_copy(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    first = NewDelivery("a", "issues", "opened", 1, "o/r", '{"v": 1}', now)
    try:
        assert await inbox.insert_many([first, NewDelivery("b", "push", None, None, None, "{}", now)]) == {"a", "b"}
        again = NewDelivery("a", "issues", "opened", 1, "o/r", '{"v": 2}', now + timedelta(seconds=1))
        assert await inbox.insert_many([again]) == set()
        row = await inbox.get("a")
        assert row is not None
        assert row.payload == '{"v": 1}'
        assert row.received_at == now
        assert await inbox.exists(["a", "b", "c"]) == {"a", "b"}
        assert await inbox.count_by_status() == {"pending": 2}
    finally:
        await store.close()


async def test_dead_delivery_can_be_requeued(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    try:
        await inbox.insert_many([NewDelivery("a", "issues", "opened", 1, "o/r", "{}", utcnow())])
        [claimed] = await inbox.claim("w", 5, timedelta(seconds=30))
        assert await inbox.fail(claimed.id, "w", "boom", retry_at=None)
        assert (await inbox.list(status="dead"))[0].last_error == "boom"
        assert await inbox.requeue("a")
        row = await inbox.get("a")
        assert row is not None
        assert (row.status, row.attempts) == ("pending", 0)
    finally:
        await store.close()


def test_readyz_reports_pending_migrations(tmp_path: Path) -> None:
    """A database behind the code's migrations is not ready; healthz still says the process is up."""
    url = f"sqlite:///{tmp_path}/k.db"

    async def downgrade() -> None:
        from alembic import command

        from bot.store.db import _alembic_config

        store = Store(url)
        try:
            async with store.engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0001"))
        finally:
            await store.close()

    app = create_app(make_settings(url), run_worker=False)
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        asyncio.run(downgrade())
        response = httpx.get(f"{server.url}/readyz")
        assert response.status_code == 503
        assert response.json()["database"] == "migrations pending"
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_operator_api_needs_the_dashboard_token_when_set(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path}/k.db", DASHBOARD_TOKEN="let-me-in"), run_worker=False)
    with ServerThread(app) as server:
        url = f"{server.url}/api/deliveries"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Basic let-me-in"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer let-me-in"}).json() == []
