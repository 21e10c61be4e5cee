"""The store: URLs people write, migrations, readiness, the inbox's edge cases."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.store.db import (
    SCHEMA_HEAD,
    DatabaseURLError,
    Store,
    _alembic_config,
    async_database_url,
    head_revision,
)
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import Base, utcnow
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


def test_the_schema_head_kickoff_checks_without_alembic_is_alembic_s_head() -> None:
    """A new migration moves `SCHEMA_HEAD` with it: `is_current` reads the version table, not the scripts."""
    assert head_revision() == SCHEMA_HEAD


async def test_a_new_database_is_not_current(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        assert not await store.is_current()  # nothing there yet, not even the version table
        assert await store.current_revision() is None
    finally:
        await store.close()


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


async def test_the_claim_reads_the_due_index_in_order_without_sorting(sqlite_url: str) -> None:
    """However long the backlog, a claim walks `ix_deliveries_due` and stops at its limit: no scan, no sort."""
    store = Store(sqlite_url)
    await store.migrate()
    inbox = Inbox(store)
    try:
        for statement in (inbox._claim, inbox._claim_excluding):
            compiled = statement.compile(dialect=store.engine.dialect)
            params = compiled.construct_params({"b_now": "2030-01-01 00:00:00.000000", "b_until": "x",
                                                "b_owner": "w", "b_worker": None, "b_limit": 8, "b_repos": ["o/r"]})
            args = [params[name] for name in compiled.positiontup or ()]
            sql = compiled.string
            if "__[POSTCOMPILE_b_repos]" in sql:  # an expanding parameter: one placeholder per value
                sql = sql.replace("(__[POSTCOMPILE_b_repos])", "(?)")
                args = [value[0] if isinstance(value, list) else value for value in args]

            def plan(conn: sqlite3.Connection, sql: str = sql, args: list[object] = args) -> str:
                return "\n".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))

            with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
                text = plan(conn)
            assert "ix_deliveries_due" in text, text
            assert "TEMP B-TREE" not in text, text
            assert "SCAN deliveries" not in text, text
    finally:
        await store.close()


async def test_claims_and_outcomes_keep_due_at_and_payloads_apart(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    try:
        await inbox.insert_many([NewDelivery(f"d{n}", "issues", "opened", 1, f"o/r{n}", f'{{"n": {n}}}',
                                             now + timedelta(microseconds=n)) for n in range(4)])
        claimed = await inbox.claim("w", 3, timedelta(seconds=60))
        assert [(c.id, c.payload) for c in claimed] == [(f"d{n}", f'{{"n": {n}}}') for n in range(3)]
        assert await inbox.complete_many(["d0", "d1"], "w") == {"d0", "d1"}
        assert await inbox.complete_many(["d2"], "someone-else") == set()  # not their lease
        assert await inbox.fail("d2", "w", "later", retry_at=now + timedelta(hours=1))
        rows = {d.id: d for d in await inbox.list()}
        assert {i: (r.status, r.due_at) for i, r in rows.items()} == {
            "d0": ("done", None),
            "d1": ("done", None),
            "d2": ("retrying", now + timedelta(hours=1)),
            "d3": ("pending", now + timedelta(microseconds=3)),
        }
        assert rows["d0"].payload == '{"n": 0}'  # still there once done
        # The retry is not due yet, so the next claim takes d3 only.
        assert [c.id for c in await inbox.claim("w", 10, timedelta(seconds=60))] == ["d3"]
    finally:
        await store.close()


async def test_migration_0005_moves_payloads_out_and_computes_due_at(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()  # PostgreSQL's fixture database is at head already; step back to before 0005

    async def downgrade() -> None:
        async with store.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0004"))

    await downgrade()
    now = utcnow().replace(microsecond=0)
    rows = [
        ("p", "pending", now, None),
        ("r", "retrying", now + timedelta(minutes=5), None),
        ("l", "processing", now, now + timedelta(minutes=2)),
        ("d", "done", now, None),
    ]
    try:
        async with store.engine.begin() as conn:
            for delivery_id, status, next_attempt, lease in rows:
                await conn.execute(
                    text("INSERT INTO deliveries (id, event, received_at, payload, status, attempts, next_attempt_at,"
                         " lease_expires_at) VALUES (:id, 'issues', :now, :payload, :status, 1, :next, :lease)"),
                    {"id": delivery_id, "now": now.replace(tzinfo=None), "payload": f'{{"id": "{delivery_id}"}}',
                     "status": status, "next": next_attempt.replace(tzinfo=None),
                     "lease": lease.replace(tzinfo=None) if lease else None},
                )
        await store.migrate()
        inbox = Inbox(store)
        stored = {d.id: d for d in await inbox.list()}
        assert {i: d.payload for i, d in stored.items()} == {i: f'{{"id": "{i}"}}' for i, *_ in rows}
        assert {i: d.due_at for i, d in stored.items()} == {
            "p": now, "r": now + timedelta(minutes=5), "l": now + timedelta(minutes=2), "d": None,
        }
        await downgrade()
        async with store.engine.connect() as conn:
            back = {str(i): str(p) for i, p in await conn.execute(text("SELECT id, payload FROM deliveries"))}
        assert back == {i: f'{{"id": "{i}"}}' for i, *_ in rows}
    finally:
        await store.close()


async def test_a_write_waits_for_another_connections_lock_then_commits(sqlite_url: str) -> None:
    """The inline writer never blocks the event loop on a lock: it hands the batch to its thread, which waits."""
    store = Store(sqlite_url)
    await store.migrate()
    inbox = Inbox(store)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        writing = asyncio.create_task(
            inbox.insert_many([NewDelivery("a", "issues", "opened", 1, "o/r", "{}", utcnow())])
        )
        ticks = 0
        while ticks < 20:  # the loop keeps running while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writing.done()
        holder.execute("COMMIT")
        assert await asyncio.wait_for(writing, 10) == {"a"}
        assert await inbox.count_by_status() == {"pending": 1}
    finally:
        holder.close()
        await store.close()


async def test_one_batch_with_a_repeated_id_stores_its_first_copy(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    try:
        batch = [NewDelivery("a", "issues", "opened", 1, "o/r", '{"copy": 1}', now),
                 NewDelivery("a", "issues", "opened", 1, "o/r", '{"copy": 2}', now),
                 NewDelivery("b", "push", None, None, None, "{}", now)]
        assert await inbox.insert_many(batch) == {"a", "b"}
        row = await inbox.get("a")
        assert row is not None
        assert row.payload == '{"copy": 1}'
    finally:
        await store.close()


async def test_the_migrations_build_exactly_the_models(database_url: str) -> None:
    """Alembic's autogenerate compare of the migrated database with `bot.store.models` finds nothing to change."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bot.store.models import Base

    def compare(conn: object) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    store = Store(database_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(compare)
    finally:
        await store.close()
    assert diff == []


async def test_migration_0007_adds_workers_and_comes_back_down(database_url: str) -> None:
    store = Store(database_url)
    try:
        await store.migrate()
        async with store.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0006"))
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("runs")})
        assert "workers" not in tables
        assert "worker_id" not in columns
        assert await store.current_revision() == "0006"
        assert not await store.is_current()
        await store.migrate()
        assert await store.is_current()
    finally:
        await store.close()


async def test_the_migrations_build_the_indexes_the_models_declare(database_url: str) -> None:
    """bot/store/models.py and the migrations in step: every table's indexes, by name and columns."""
    store = Store(database_url)
    try:
        await store.migrate()

        def migrated(conn: object) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
            inspector = inspect(conn)
            return {
                table: {(ix["name"], tuple(str(c) for c in ix["column_names"])) for ix in inspector.get_indexes(table)
                        if not ix.get("unique")}
                for table in Base.metadata.tables
            }

        async with store.engine.connect() as conn:
            found = await conn.run_sync(migrated)
        declared = {
            name: {(str(ix.name), tuple(c.name for c in ix.columns)) for ix in table.indexes if not ix.unique}
            for name, table in Base.metadata.tables.items()
        }
        assert found == declared
    finally:
        await store.close()
