"""Persistence: SQLAlchemy 2 (async) over SQLite (WAL) or PostgreSQL, with Alembic migrations."""

from bot.store.db import Store, async_database_url

__all__ = ["Store", "async_database_url"]
