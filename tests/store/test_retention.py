"""Retention: only handled deliveries past the window go, in batches; redeliveries inside it are still refused."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.settings import SettingsError, load_settings
from bot.store.db import Store
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import DeliveryPayload, utcnow
from bot.store.retention import Retention

LEASE = timedelta(seconds=60)


def delivery(delivery_id: str, received_at: datetime) -> NewDelivery:
    return NewDelivery(delivery_id, "issues", "labeled", 1, "o/r", '{"x": "' + "p" * 2000 + '"}', received_at)


async def payload_ids(store: Store) -> set[str]:
    async with store.sessions() as session:
        return set(await session.scalars(select(DeliveryPayload.delivery_id)))


async def handle(inbox: Inbox, ids: set[str], outcome: str) -> None:
    """Claim everything due and record `outcome` for `ids` (the others are released untouched)."""
    for claimed in await inbox.claim("w", 1000, LEASE):
        if claimed.id not in ids:
            await inbox.release(claimed.id, "w")
        elif outcome == "done":
            await inbox.complete(claimed.id, "w")
        elif outcome == "dead":
            await inbox.fail(claimed.id, "w", "boom", retry_at=None)
        elif outcome == "retrying":
            await inbox.fail(claimed.id, "w", "boom", retry_at=utcnow() + timedelta(days=30))
        # "processing": left leased


async def test_only_handled_deliveries_past_the_window_are_deleted_with_their_payloads(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    old, recent = now - timedelta(days=15), now - timedelta(days=13)
    try:
        await inbox.insert_many([
            delivery("old-done", old), delivery("old-dead", old), delivery("old-retrying", old),
            delivery("old-processing", old), delivery("old-pending", old), delivery("recent-done", recent),
        ])
        await handle(inbox, {"old-done", "recent-done"}, "done")
        await handle(inbox, {"old-dead"}, "dead")
        await handle(inbox, {"old-retrying"}, "retrying")
        await handle(inbox, {"old-processing"}, "processing")
        before = {d.id: d.status for d in await inbox.list(limit=100)}
        assert before == {
            "old-done": "done", "old-dead": "dead", "old-retrying": "retrying", "old-processing": "processing",
            "old-pending": "pending", "recent-done": "done",
        }

        report = await Retention(store, days=14).prune(now)

        assert report.deliveries == 1
        kept = {d.id for d in await inbox.list(limit=100)}
        assert kept == set(before) - {"old-done"}
        assert await payload_ids(store) == kept  # the payload went with its row, and only it
        assert (await Retention(store, days=14).prune(now)).deliveries == 0
    finally:
        await store.close()


async def test_deletes_go_in_batches_until_none_is_left(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    ids = {f"d{i}" for i in range(7)}
    try:
        await inbox.insert_many([delivery(i, now - timedelta(days=20, minutes=n)) for n, i in enumerate(sorted(ids))])
        await handle(inbox, ids, "done")

        report = await Retention(store, days=14, batch=3).prune(now)

        assert (report.deliveries, report.batches) == (7, 3)  # 3 + 3 + 1, each its own transaction
        assert await inbox.list(limit=100) == []
        assert await payload_ids(store) == set()
    finally:
        await store.close()


async def test_a_redelivery_inside_the_window_is_still_refused_and_one_past_it_is_new(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    inbox = Inbox(store)
    now = utcnow()
    try:
        await inbox.insert_many([
            delivery("inside", now - timedelta(days=7)), delivery("past", now - timedelta(days=30)),
        ])
        await handle(inbox, {"inside", "past"}, "done")
        await Retention(store, days=14).prune(now)

        # GitHub's redelivery of a handled delivery carries the same id: the inbox still holds it, so it is a copy.
        assert await inbox.insert_many([delivery("inside", now)]) == set()
        assert await inbox.exists(["inside", "past"]) == {"inside"}  # what `kickoff redeliver` skips
        row = await inbox.get("inside")
        assert row is not None
        assert row.status == "done"
        # Past the window (longer than any redelivery GitHub makes) the id is forgotten.
        assert await inbox.insert_many([delivery("past", now)]) == {"past"}
    finally:
        await store.close()


def test_a_retention_shorter_than_a_week_is_refused_in_one_line() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, KICKOFF_DELIVERY_RETENTION_DAYS="6")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("KICKOFF_DELIVERY_RETENTION_DAYS: 6 days is too short: at least 7")
    assert load_settings(_env_file=None, KICKOFF_DELIVERY_RETENTION_DAYS="7").dispatch.delivery_retention_days == 7
    assert load_settings(_env_file=None).dispatch.delivery_retention_days == 14

