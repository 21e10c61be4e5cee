"""The durable inbox: store acknowledged deliveries once, lease them to dispatchers, record outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.db import Store
from bot.store.models import Delivery, DeliveryStatus, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    repository: str | None
    payload: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    repository: str | None
    payload: str
    attempts: int
    received_at: datetime


class Inbox:
    """Inbox operations. Every write is one statement, so SQLite never has to upgrade a read lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
        self._insert_stmt = (
            insert(cast(Table, Delivery.__table__))
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(Delivery.id)
        )

    async def insert_many(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction; return the ids that were new (a stored id is left untouched)."""
        if not deliveries:
            return set()
        rows = [
            {
                "id": d.id,
                "event": d.event,
                "action": d.action,
                "installation_id": d.installation_id,
                "repository": d.repository,
                "received_at": d.received_at,
                "payload": d.payload,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": d.received_at,
            }
            for d in deliveries
        ]
        if self.store.sqlite_writer is not None:
            return await self.store.sqlite_writer.transaction(_sqlite_insert, rows)
        # Core, not the ORM, on this hot path: one cached statement, executed as "insertmanyvalues" batches.
        async with self.store.engine.begin() as conn:
            result = await conn.execute(self._insert_stmt, rows)
            return {row[0] for row in result}

    async def claim(self, owner: str, limit: int, lease: timedelta, *, exclude_repos: Sequence[str] = ()) -> list[
        ClaimedDelivery
    ]:
        """Lease up to `limit` due deliveries, oldest first. PostgreSQL skips rows another dispatcher holds."""
        now = utcnow()
        due = or_(
            and_(
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
                Delivery.next_attempt_at <= now,
            ),
            and_(Delivery.status == DeliveryStatus.PROCESSING, Delivery.lease_expires_at < now),
        )
        candidates = select(Delivery.id).where(due)
        if exclude_repos:
            candidates = candidates.where(
                or_(Delivery.repository.is_(None), Delivery.repository.not_in(list(exclude_repos)))
            )
        candidates = candidates.order_by(Delivery.received_at, Delivery.id).limit(limit)
        if self.store.dialect == "postgresql":
            # A materialised CTE: PostgreSQL may re-run an `IN (subquery)` per row, and with SKIP LOCKED each
            # re-run skips the rows this very update has locked, overshooting the limit.
            chosen = candidates.with_for_update(skip_locked=True).cte("chosen")
            target = update(Delivery).where(Delivery.id == chosen.c.id, due)
        else:
            target = update(Delivery).where(Delivery.id.in_(candidates.scalar_subquery()), due)
        stmt = (
            target
            .values(
                status=DeliveryStatus.PROCESSING,
                lease_owner=owner,
                lease_expires_at=now + lease,
                attempts=Delivery.attempts + 1,
            )
            .returning(
                Delivery.id,
                Delivery.event,
                Delivery.action,
                Delivery.installation_id,
                Delivery.repository,
                Delivery.payload,
                Delivery.attempts,
                Delivery.received_at,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.store.engine.begin() as conn:
            result = await conn.execute(stmt)
            claimed = [
                ClaimedDelivery(
                    id=row.id, event=row.event, action=row.action, installation_id=row.installation_id,
                    repository=row.repository, payload=row.payload, attempts=row.attempts,
                    received_at=row.received_at,
                )
                for row in result
            ]
        claimed.sort(key=lambda c: (c.received_at, c.id))
        return claimed

    async def renew(self, delivery_id: str, owner: str, lease: timedelta) -> bool:
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.lease_owner == owner,
                    Delivery.status == DeliveryStatus.PROCESSING,
                )
                .values(lease_expires_at=utcnow() + lease)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def complete(self, delivery_id: str, owner: str) -> bool:
        return await self._finish(
            delivery_id, owner, status=DeliveryStatus.DONE, last_error=None, finished_at=utcnow()
        )

    async def fail(self, delivery_id: str, owner: str, error: str, *, retry_at: datetime | None) -> bool:
        """Record a failed attempt: retried at `retry_at`, or parked as dead when that is None."""
        if retry_at is None:
            return await self._finish(
                delivery_id, owner, status=DeliveryStatus.DEAD, last_error=error, finished_at=utcnow()
            )
        return await self._finish(
            delivery_id, owner, status=DeliveryStatus.RETRYING, last_error=error, next_attempt_at=retry_at
        )

    async def _finish(self, delivery_id: str, owner: str, **values: object) -> bool:
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.lease_owner == owner,
                    Delivery.status == DeliveryStatus.PROCESSING,
                )
                .values(lease_owner=None, lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                log.warning("lost the lease on %s before recording its outcome", delivery_id)
                return False
            return True

    async def release(self, delivery_id: str, owner: str) -> bool:
        """Hand a leased delivery back untouched, as if it had not been claimed."""
        return await self._finish(delivery_id, owner, status=DeliveryStatus.PENDING, attempts=Delivery.attempts - 1)

    async def requeue(self, delivery_id: str) -> bool:
        """Give a dead or finished delivery another round (operator action)."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status.in_([DeliveryStatus.DEAD, DeliveryStatus.DONE]))
                .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=utcnow(), finished_at=None)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def get(self, delivery_id: str) -> Delivery | None:
        async with self.store.sessions() as session:
            return await session.get(Delivery, delivery_id)

    async def list(self, *, status: str | None = None, limit: int = 100) -> list[Delivery]:
        stmt = select(Delivery).order_by(Delivery.received_at.desc(), Delivery.id).limit(limit)
        if status is not None:
            stmt = stmt.where(Delivery.status == status)
        async with self.store.sessions() as session:
            return list((await session.scalars(stmt)).all())

    async def count_by_status(self) -> dict[str, int]:
        async with self.store.sessions() as session:
            rows = await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return {status: count for status, count in rows}

    async def exists(self, delivery_ids: Sequence[str]) -> set[str]:
        if not delivery_ids:
            return set()
        async with self.store.sessions() as session:
            rows = await session.scalars(select(Delivery.id).where(Delivery.id.in_(list(delivery_ids))))
            return set(rows.all())


_SQLITE_COLUMNS = ("id", "event", "action", "installation_id", "repository", "received_at", "payload", "status",
                   "attempts", "next_attempt_at")
_SQLITE_INSERT = (
    "INSERT INTO deliveries (id, event, action, installation_id, repository, received_at, payload, status, attempts, "
    "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id"
)


def _sqlite_insert(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> set[str]:
    """The same upsert as the SQLAlchemy path; timestamps in SQLAlchemy's SQLite storage format."""
    new: set[str] = set()
    for row in rows:
        values = [_sqlite_value(row[c]) for c in _SQLITE_COLUMNS]
        new.update(r[0] for r in conn.execute(_SQLITE_INSERT, values).fetchall())
    return new


def _sqlite_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0))


class InboxWriter:
    """Group commit for the ingress: concurrent deliveries share one INSERT and one commit.

    Each caller awaits its own outcome, so no delivery is acknowledged before it is durable.
    """

    def __init__(self, inbox: Inbox, *, max_batch: int = 256) -> None:
        self.inbox = inbox
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[NewDelivery, asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("inbox writer stopped"))

    async def submit(self, delivery: NewDelivery) -> bool:
        """Store a delivery; True when it is new, False when its id was already in the inbox."""
        if self._task is None:
            return delivery.id in await self.inbox.insert_many([delivery])
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((delivery, future))
        return await future

    async def _run(self) -> None:
        # Two batches in flight: while one commits, the next one gathers (the database still sees one at a time).
        slots = asyncio.Semaphore(2)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                batch = [await self._queue.get()]
                await slots.acquire()
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                task = asyncio.create_task(self._commit(batch, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _commit(self, batch: list[tuple[NewDelivery, asyncio.Future[bool]]], slots: asyncio.Semaphore) -> None:
        try:
            unique: dict[str, NewDelivery] = {}
            for delivery, _ in batch:
                unique.setdefault(delivery.id, delivery)
            try:
                new_ids = await self.inbox.insert_many(list(unique.values()))
            except Exception as exc:
                log.exception("could not store %d deliveries", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            first_seen: set[str] = set()
            for delivery, future in batch:
                is_new = delivery.id in new_ids and delivery.id not in first_seen
                first_seen.add(delivery.id)
                if not future.done():
                    future.set_result(is_new)
        finally:
            slots.release()
