"""Retention: handled deliveries and their payloads are deleted once older than `KICKOFF_DELIVERY_RETENTION_DAYS`.

Only `done` deliveries go, by the time they were received (GitHub's redelivery window runs from the original
delivery), so the inbox still holds every id GitHub may redeliver and `Inbox.insert_many`'s `ON CONFLICT (id) DO
NOTHING` still refuses the copy. Pending, processing, retrying and dead deliveries are never deleted: they are work
still owed, or a failure an operator has to look at.

Deletes go in batches of `batch` rows, each its own short transaction (payloads first, then the rows, by id), so a
pass never holds SQLite's one writer, or PostgreSQL row locks, for long. On PostgreSQL the batch is chosen
`FOR UPDATE SKIP LOCKED`, so two workers pruning at once take different rows, and a row requeued meanwhile (no
longer `done`) is left alone on either backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, delete, select

from bot.store.db import Store
from bot.store.models import Delivery, DeliveryPayload, DeliveryStatus

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    """What one pass deleted, and in how many transactions."""

    deliveries: int = 0
    batches: int = 0


class Retention:
    def __init__(self, store: Store, *, days: float, batch: int = 500) -> None:
        self.store = store
        self.window = timedelta(days=days)
        self.batch = batch

    def cutoff(self, now: datetime) -> datetime:
        return now - self.window

    async def prune(self, now: datetime) -> RetentionReport:
        """Delete the handled deliveries received before the window, batch after batch until none is left."""
        report = RetentionReport()
        cutoff = self.cutoff(now)
        while True:
            deleted = await self.store.write(lambda conn: self._delete_batch(conn, cutoff))
            if deleted:
                report.batches += 1
                report.deliveries += deleted
            if deleted < self.batch:
                return report

    def _delete_batch(self, conn: Connection, cutoff: datetime) -> int:
        deliveries = cast(Table, Delivery.__table__)
        payloads = cast(Table, DeliveryPayload.__table__)
        handled = (deliveries.c.status == DeliveryStatus.DONE) & (deliveries.c.received_at < cutoff)
        # `ix_deliveries_status_received`: the batch is read from the index, oldest first.
        chosen = select(deliveries.c.id).where(handled).order_by(deliveries.c.received_at).limit(self.batch)
        if self.store.dialect == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        ids = list(conn.scalars(chosen))
        if not ids:
            return 0
        conn.execute(delete(payloads).where(payloads.c.delivery_id.in_(ids)))
        conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids), handled))
        return len(ids)


async def prune_periodically(
    retention: Retention, stop: asyncio.Event, every: float, clock: Callable[[], datetime]
) -> None:
    """The worker's `retention` loop: one pass at start-up, then one every `every` seconds."""
    while not stop.is_set():
        try:
            report = await retention.prune(clock())
            if report.deliveries:
                log.info("retention: deleted %d handled deliveries older than %s in %d batches",
                         report.deliveries, retention.window, report.batches)
        except Exception as exc:
            log.warning("retention pass failed, trying again in %.0f s: %s", every, exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
