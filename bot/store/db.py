"""Engine set-up, URL handling and migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"
A = TypeVar("A")
R = TypeVar("R")


class DatabaseURLError(ValueError):
    pass


def async_database_url(url: str) -> str:
    """Map the URLs people write (`postgres://`, `postgresql://`, `sqlite:///x.db`) to async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    scheme, _, rest = url.partition("://")
    if not rest:
        raise DatabaseURLError(f"not a database URL: {url.split('@')[-1]!r}")
    base = scheme.split("+")[0]
    if base == "postgresql":
        parts = urlsplit("postgresql+asyncpg://" + rest)
        # asyncpg takes `ssl`, not libpq's `sslmode`.
        query = [("ssl", v) if k == "sslmode" else (k, v) for k, v in parse_qsl(parts.query)]
        return urlunsplit(parts._replace(query=urlencode(query)))
    if base == "sqlite":
        return "sqlite+aiosqlite://" + rest
    raise DatabaseURLError(f"unsupported database {base!r}: use sqlite:/// or postgresql://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SqliteWriter:
    """Runs a whole SQLite write transaction in one call on a dedicated thread with its own connection.

    The ingress's group commit uses it: with aiosqlite each statement of a transaction (begin, insert, fetch,
    commit) waits for a turn of a busy event loop; here the transaction costs one thread hop.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    async def transaction(self, work: Callable[[sqlite3.Connection, A], R], arg: A) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, work, arg)

    def _run(self, work: Callable[[sqlite3.Connection, A], R], arg: A) -> R:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            _sqlite_pragmas(self._conn, None)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn, arg)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    async def close(self) -> None:
        def close_connection() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_connection)
        self._executor.shutdown(wait=True)


class Store:
    """Owns the engine and session factory; built once in the application's lifespan."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_database_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.url.startswith("sqlite"):
            path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if path in ("", ":memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                kwargs.update(connect_args={"timeout": 30})
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)
        file = self.sqlite_path
        self.sqlite_writer = SqliteWriter(file) if file is not None else None

    @property
    def sqlite_path(self) -> str | None:
        """The file of a file-backed SQLite database, else None."""
        if not self.is_sqlite:
            return None
        database = self.engine.url.database
        return database if database and database != ":memory:" else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self, revision: str = "head") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())

    async def is_current(self) -> bool:
        return await self.current_revision() == head_revision()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()
        await self.engine.dispose()


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(_alembic_config(connection), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
