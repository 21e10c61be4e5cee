"""The durable inbox: store acknowledged deliveries once, lease them to dispatchers, record outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, cast

from sqlalchemy import Connection, Integer, Table, Update, bindparam, func, or_, select, text, update
from sqlalchemy import insert as insert_into
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.db import Store
from bot.store.models import Delivery, DeliveryPayload, DeliveryStatus, UTCDateTime, utcnow

log = logging.getLogger(__name__)

# Any constant works: it names "the delivery-claim lock" among PostgreSQL advisory locks.
DELIVERY_CLAIM_LOCK_KEY: Final = 0x696E626F  # "inbo"


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
        # The dispatcher's statements, built once: SQLAlchemy then only binds the parameters.
        self._claim = _claim_statement(postgres=store.dialect == "postgresql", excluding=False)
        self._claim_excluding = _claim_statement(postgres=store.dialect == "postgresql", excluding=True)
        payloads = cast(Table, DeliveryPayload.__table__)
        self._payloads = select(payloads.c.delivery_id, payloads.c.payload).where(
            payloads.c.delivery_id.in_(bindparam("b_ids", expanding=True))
        )
        deliveries = cast(Table, Delivery.__table__)
        until = bindparam("b_until", type_=UTCDateTime())
        # `b_ids` among the deliveries `b_owner` still holds a lease on.
        held = update(deliveries).where(
            deliveries.c.id.in_(bindparam("b_ids", expanding=True)),
            deliveries.c.lease_owner == bindparam("b_owner"),
            deliveries.c.status == DeliveryStatus.PROCESSING,
        )
        # A renewal names the worker too: one that registered again (declared dead while it lived) keeps its leases
        # under the name that heartbeats now.
        self._renew = held.values(
            lease_expires_at=until, due_at=until, worker_id=bindparam("b_worker", type_=Integer())
        ).returning(deliveries.c.id)
        self._complete = (
            held
            .values(lease_owner=None, lease_expires_at=None, status=DeliveryStatus.DONE, last_error=None,
                    finished_at=bindparam("b_now", type_=UTCDateTime()), due_at=None)
            .returning(deliveries.c.id)
        )

    async def insert_many(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction; return the ids that were new (a stored id is left untouched)."""
        if not deliveries:
            return set()
        if self.store.sqlite_writer is not None:
            # The ingress's hot path: plain DB-API statements, a fraction of the cost of SQLAlchemy's per-row work.
            return await self.store.sqlite_writer.raw_transaction(lambda conn: _sqlite_insert(conn, deliveries))
        rows = [
            {
                "id": d.id,
                "event": d.event,
                "action": d.action,
                "installation_id": d.installation_id,
                "repository": d.repository,
                "received_at": d.received_at,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": d.received_at,
                "due_at": d.received_at,
            }
            for d in deliveries
        ]
        payloads: dict[str, str] = {}
        for d in deliveries:
            payloads.setdefault(d.id, d.payload)  # a repeated id keeps its first copy
        # Core, not the ORM: cached statements, executed as "insertmanyvalues" batches.
        stmt = self._insert_stmt
        insert_payload = insert_into(DeliveryPayload)

        def insert(conn: Connection) -> set[str]:
            new = {row[0] for row in conn.execute(stmt, rows)}
            if new:
                conn.execute(insert_payload, [{"delivery_id": i, "payload": payloads[i]} for i in sorted(new)])
            return new

        return await self.store.write(insert)

    async def claim(
        self, owner: str, limit: int, lease: timedelta, *, exclude_repos: Sequence[str] = (),
        worker_id: int | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries, oldest first. PostgreSQL skips rows another dispatcher holds.

        `worker_id` names the worker holding the leases: when it dies they end at once (bot.store.workers), not when
        `lease` runs out."""
        now = utcnow()
        params: dict[str, object] = {"b_now": now, "b_until": now + lease, "b_owner": owner, "b_limit": limit,
                                     "b_worker": worker_id}
        if exclude_repos:
            params["b_repos"] = list(exclude_repos)
        stmt = self._claim_excluding if exclude_repos else self._claim
        payloads_stmt = self._payloads

        def run(conn: Connection) -> list[ClaimedDelivery]:
            rows = list(conn.execute(stmt, params))
            if not rows:
                return []
            payloads: dict[str, str] = {
                delivery_id: payload
                for delivery_id, payload in conn.execute(payloads_stmt, {"b_ids": [row.id for row in rows]})
            }
            return [
                ClaimedDelivery(
                    id=row.id, event=row.event, action=row.action, installation_id=row.installation_id,
                    repository=row.repository, payload=payloads.get(row.id, ""), attempts=row.attempts,
                    received_at=row.received_at,
                )
                for row in rows
            ]

        postgres = self.store.dialect == "postgresql"

        def claim(conn: Connection) -> list[ClaimedDelivery]:
            if postgres:
                # Claims one after another across workers (released at commit): each then sees the leases every
                # claim before it took, so two workers never lease one repository's deliveries at once.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DELIVERY_CLAIM_LOCK_KEY})
            return run(conn)

        claimed = await self.store.write(claim)
        claimed.sort(key=lambda c: (c.received_at, c.id))
        return claimed

    async def renew_many(
        self, delivery_ids: Sequence[str], owner: str, lease: timedelta, *, worker_id: int | None = None
    ) -> set[str]:
        """Extend the leases `owner` still holds, in the name of worker `worker_id`; the ids renewed."""
        if not delivery_ids:
            return set()
        stmt = self._renew
        params = {"b_ids": list(delivery_ids), "b_owner": owner, "b_until": utcnow() + lease, "b_worker": worker_id}
        return await self.store.write(lambda conn: {row[0] for row in conn.execute(stmt, params)})

    async def complete(self, delivery_id: str, owner: str) -> bool:
        return await self._finish(
            delivery_id, owner, status=DeliveryStatus.DONE, last_error=None, finished_at=utcnow(), due_at=None
        )

    async def fail(self, delivery_id: str, owner: str, error: str, *, retry_at: datetime | None) -> bool:
        """Record a failed attempt: retried at `retry_at`, or parked as dead when that is None."""
        if retry_at is None:
            return await self._finish(
                delivery_id, owner, status=DeliveryStatus.DEAD, last_error=error, finished_at=utcnow(), due_at=None
            )
        return await self._finish(
            delivery_id, owner, status=DeliveryStatus.RETRYING, last_error=error, next_attempt_at=retry_at,
            due_at=retry_at,
        )

    async def complete_many(self, delivery_ids: Sequence[str], owner: str) -> set[str]:
        """Mark handled deliveries done in one statement; the ids whose lease was still ours."""
        if not delivery_ids:
            return set()
        stmt = self._complete
        params = {"b_ids": list(delivery_ids), "b_owner": owner, "b_now": utcnow()}
        done = await self.store.write(lambda conn: {row[0] for row in conn.execute(stmt, params)})
        for delivery_id in delivery_ids:
            if delivery_id not in done:
                log.warning("lost the lease on %s before recording its outcome", delivery_id)
        return done

    async def _finish(self, delivery_id: str, owner: str, **values: object) -> bool:
        stmt = (
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.lease_owner == owner,
                Delivery.status == DeliveryStatus.PROCESSING,
            )
            .values(lease_owner=None, lease_expires_at=None, **values)
            .execution_options(synchronize_session=False)
        )
        if await self.store.write(lambda conn: _rowcount(conn.execute(stmt))) != 1:
            log.warning("lost the lease on %s before recording its outcome", delivery_id)
            return False
        return True

    async def release(self, delivery_id: str, owner: str) -> bool:
        """Hand a leased delivery back untouched, as if it had not been claimed."""
        return await self._finish(delivery_id, owner, status=DeliveryStatus.PENDING, attempts=Delivery.attempts - 1,
                                  due_at=Delivery.next_attempt_at)

    async def requeue(self, delivery_id: str) -> bool:
        """Give a dead or finished delivery another round (operator action)."""
        now = utcnow()
        stmt = (
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status.in_([DeliveryStatus.DEAD, DeliveryStatus.DONE]))
            .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, due_at=now, finished_at=None)
            .execution_options(synchronize_session=False)
        )
        return await self.store.write(lambda conn: _rowcount(conn.execute(stmt)) == 1)

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


_SQLITE_INSERT_ROW = "(?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
_SQLITE_INSERT_PAYLOAD = "INSERT INTO delivery_payloads (delivery_id, payload) VALUES (?, ?)"


def _sqlite_insert(raw: sqlite3.Connection, deliveries: Sequence[NewDelivery]) -> set[str]:
    """The same upserts as the SQLAlchemy statements, one INSERT for the batch; timestamps in SQLAlchemy's SQLite
    storage format."""
    values: list[object] = []
    for d in deliveries:
        stamp = _sqlite_time(d.received_at)
        values += (d.id, d.event, d.action, d.installation_id, d.repository, stamp, stamp, stamp)
    new = {row[0] for row in raw.execute(
        "INSERT INTO deliveries (id, event, action, installation_id, repository, received_at, status, attempts, "  # noqa: S608 - placeholders only
        f"next_attempt_at, due_at) VALUES {', '.join([_SQLITE_INSERT_ROW] * len(deliveries))} "
        "ON CONFLICT (id) DO NOTHING RETURNING id",
        values,
    )}
    first: dict[str, str] = {}
    for d in deliveries:
        if d.id in new:
            first.setdefault(d.id, d.payload)  # a repeated id keeps its first copy, as the row does
    raw.executemany(_SQLITE_INSERT_PAYLOAD, list(first.items()))
    return new


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _claim_statement(*, postgres: bool, excluding: bool) -> Update:
    """Lease the oldest due deliveries: parameters `b_now`, `b_until`, `b_owner`, `b_worker`, `b_limit` (and
    `b_repos`)."""
    t = cast(Table, Delivery.__table__)
    now = bindparam("b_now", type_=UTCDateTime())
    due = t.c.due_at <= now
    # One repository's deliveries are handled by one worker at a time, across every worker: none is claimed while
    # another of its repository is leased (`processing`, its lease running). So GitHub's `issues.opened` and
    # `issues.labeled` for one label, or a pull request's events, never race each other on two workers.
    other = t.alias("leased")
    leased = (
        select(other.c.id)
        .where(other.c.status == DeliveryStatus.PROCESSING, other.c.repository == t.c.repository,
               other.c.due_at > now)
        .exists()
    )
    candidates = select(t.c.id).where(due, or_(t.c.repository.is_(None), ~leased))
    if excluding:
        candidates = candidates.where(
            or_(t.c.repository.is_(None), t.c.repository.not_in(bindparam("b_repos", expanding=True)))
        )
    # Index order (`ix_deliveries_due`): a claim reads the rows it takes, however long the backlog.
    candidates = candidates.order_by(t.c.due_at, t.c.id).limit(bindparam("b_limit", type_=Integer()))
    if postgres:
        # A materialised CTE: PostgreSQL may re-run an `IN (subquery)` per row, and with SKIP LOCKED each re-run
        # skips the rows this very update has locked, overshooting the limit.
        chosen = candidates.with_for_update(skip_locked=True).cte("chosen")
        target = update(t).where(t.c.id == chosen.c.id, due)
    else:
        # SQLite runs one writer at a time: the rows the subquery picks are still due when they are updated.
        target = update(t).where(t.c.id.in_(candidates.scalar_subquery()))
    until = bindparam("b_until", type_=UTCDateTime())
    return target.values(
        status=DeliveryStatus.PROCESSING,
        lease_owner=bindparam("b_owner"),
        worker_id=bindparam("b_worker", type_=Integer()),
        lease_expires_at=until,
        due_at=until,  # claimable again only when the lease runs out
        attempts=t.c.attempts + 1,
    ).returning(t.c.id, t.c.event, t.c.action, t.c.installation_id, t.c.repository, t.c.attempts, t.c.received_at)


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
