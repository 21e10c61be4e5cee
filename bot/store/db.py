"""Engine set-up, URL handling and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEAD: Final = "0015"
"""The newest migration's revision, so a store can tell it is current without loading alembic and its scripts
(`kickoff status`, `/readyz`); a new migration moves it (tests/store/test_db.py checks it is alembic's head)."""
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
    """Runs a whole SQLite write transaction in one synchronous call, so the write lock is never held across an await.

    A transaction is normally run inline on the event loop's thread: with WAL and `synchronous=NORMAL` a commit does
    not wait for the disk, so a short transaction costs well under a millisecond, far less than handing it to
    another thread (one hop per transaction, and then the GIL bouncing between threads) or to aiosqlite (one hop per
    statement, with the lock held while the loop runs other work). The inline connection never waits for a lock
    (`busy_timeout=0`) and never checkpoints: when another connection holds the write lock the transaction goes to a
    dedicated thread that may wait, and WAL checkpoints run on that thread in the background, so the event loop is
    never blocked on a lock or on fsync. The work is SQLAlchemy Core on a synchronous connection, so the same
    statements serve SQLite here and PostgreSQL through `Store.write`.
    """

    CHECKPOINT_EVERY_SECONDS = 1.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._inline: _Connection | None = None
        self._threaded: _Connection | None = None
        self._last_checkpoint = 0.0
        self._checkpointing: asyncio.Future[None] | None = None

    async def transaction(self, work: Callable[[Connection], R], *, inline: bool = True) -> R:
        """Run SQLAlchemy Core `work` as one transaction; on the writer's thread when not `inline` (a long one,
        which would block the event loop)."""
        return await self._run(partial(_sqlalchemy_transaction, work), inline=inline)

    async def raw_transaction(self, work: Callable[[sqlite3.Connection], R]) -> R:
        """Run DB-API `work` as one transaction, without SQLAlchemy's per-transaction cost (the ingress's inserts)."""
        return await self._run(partial(_raw_transaction, work))

    async def _run(self, transaction: Callable[[_Connection, bool], R], *, inline: bool = True) -> R:
        loop = asyncio.get_running_loop()
        if self._inline is None:
            self._inline = _Connection(self.path, inline=True)
        try:
            if not inline:
                raise _Busy
            result = transaction(self._inline, True)
        except _Busy:
            result = await loop.run_in_executor(self._executor, transaction, self._threaded_connection(), False)
        if loop.time() - self._last_checkpoint > self.CHECKPOINT_EVERY_SECONDS and (
            self._checkpointing is None or self._checkpointing.done()
        ):
            self._last_checkpoint = loop.time()
            self._checkpointing = loop.run_in_executor(self._executor, self._checkpoint)
        return result

    def _threaded_connection(self) -> _Connection:
        if self._threaded is None:
            self._threaded = _Connection(self.path, inline=False)
        return self._threaded

    def _checkpoint(self) -> None:
        self._threaded_connection().raw.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def close(self) -> None:
        def close_engines() -> None:
            for conn in (self._inline, self._threaded):
                if conn is not None:
                    conn.close()
            self._inline = self._threaded = None

        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        await asyncio.get_running_loop().run_in_executor(self._executor, close_engines)
        self._executor.shutdown(wait=True)


class _Busy(Exception):
    """Another connection holds SQLite's write lock."""


class _Connection:
    """One SQLite connection in autocommit mode (transactions are begun explicitly), reachable both raw and through
    a one-connection SQLAlchemy engine. The inline one never waits for a lock and never checkpoints."""

    def __init__(self, path: str, *, inline: bool) -> None:
        self.raw = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        _sqlite_pragmas(self.raw, None)
        if inline:
            self.raw.execute("PRAGMA busy_timeout=0")
            self.raw.execute("PRAGMA wal_autocheckpoint=0")
        self.engine = create_engine("sqlite://", creator=lambda: self.raw, poolclass=StaticPool)

    def begin(self, inline: bool) -> None:
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if inline:
                raise _Busy from exc
            raise

    def close(self) -> None:
        self.engine.dispose()
        self.raw.close()


def _sqlalchemy_transaction(work: Callable[[Connection], R], conn: _Connection, inline: bool) -> R:
    with conn.engine.connect() as sa:
        conn.begin(inline)
        try:
            result = work(sa)
        except BaseException:
            conn.raw.execute("ROLLBACK")
            raise
        conn.raw.execute("COMMIT")
        return result


def _raw_transaction(work: Callable[[sqlite3.Connection], R], conn: _Connection, inline: bool) -> R:
    conn.begin(inline)
    try:
        result = work(conn.raw)
    except BaseException:
        conn.raw.execute("ROLLBACK")
        raise
    conn.raw.execute("COMMIT")
    return result


class Busy(Exception):
    """`Store.exclusive(..., wait=False)`: another worker holds the lock."""


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
        self._local_locks: dict[str, asyncio.Lock] = {}

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

    async def write(self, work: Callable[[Connection], R], *, long: bool = False) -> R:
        """Run `work` (SQLAlchemy Core on a synchronous connection) as one write transaction.

        On a SQLite file it runs through the `SqliteWriter`, in one call that never holds the lock across an await:
        inline on the event loop, or on the writer's thread when `long` (many statements, which would block the
        loop for milliseconds); elsewhere on a connection of the async engine, each statement awaited.
        """
        if self.sqlite_writer is not None:
            return await self.sqlite_writer.transaction(work, inline=not long)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str, *, wait: bool = True) -> AsyncIterator[None]:
        """Hold the lock `name` across every worker of this database for the duration of the block.

        On PostgreSQL a session advisory lock (`pg_advisory_lock(hashtext(name))`) on a connection of its own, held
        for the block and released at its end, or by the server when that connection dies with a killed worker.
        On SQLite (one process) an asyncio lock of this process. With `wait=False` a held lock raises `Busy` at
        once instead of waiting.
        """
        if self.dialect != "postgresql":
            lock = self._local_locks.setdefault(name, asyncio.Lock())
            if not wait and lock.locked():
                raise Busy(name)
            async with lock:
                yield
            return
        # A connection of its own, never shared with the block's transactions: the lock lives as long as it does.
        async with self.engine.connect() as conn:
            try:
                if wait:
                    await conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": name})
                    taken = True
                else:
                    taken = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(hashtext(:name))"),
                                                   {"name": name}))
                await conn.commit()  # the lock is the session's, not the transaction's: nothing stays open
            except BaseException:
                # Cancelled or failed while asking: the lock may have been granted, so the connection goes, not
                # back to the pool.
                await conn.invalidate()
                raise
            if not taken:
                raise Busy(name)
            try:
                yield
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": name})
                    await conn.commit()
                except BaseException:
                    # Unlock failed (connection broken, or cancelled): drop the connection, so the lock goes with
                    # it rather than back into the pool still held.
                    await conn.invalidate()
                    raise

    async def migrate(self, revision: str = "head") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def is_current(self) -> bool:
        """Whether the schema is at `SCHEMA_HEAD`: the version table read directly, without alembic."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_recorded_revisions) == [SCHEMA_HEAD]

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()
        await self.engine.dispose()


# Alembic is imported where it is used: opening a store for reading (`kickoff status`) must not pay for it.
def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _recorded_revisions(connection: Connection) -> list[str]:
    """The revisions in alembic's version table (none before the first migration)."""
    if not inspect(connection).has_table("alembic_version"):
        return []
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
