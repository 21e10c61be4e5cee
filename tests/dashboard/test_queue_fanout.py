"""The dashboard's queue rows with a fan-out: its alternatives share their leader's place and follow it, by what the
queue service last wrote (`pull_requests.queue_check`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.dashboard.queries import queue_rows
from bot.store.db import Store
from bot.store.models import PullRequest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _memory(state: str, position: int) -> str:
    return json.dumps({"check": {"title": state}, "state": state, "reason": None, "position": position})


async def test_alternatives_share_their_leaders_place_and_follow_it(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    try:
        stored = {1: ("queued", 2), 2: ("alternative", 1), 3: ("next_for_review", 1), 4: ("alternative", 1)}
        async with store.sessions.begin() as session:
            for number, (state, position) in stored.items():
                session.add(PullRequest(installation_id=7, repository="octo/hello", number=number, head_ref="b",
                                        base_ref="main", state="open", queue_check=_memory(state, position),
                                        created_at=NOW, updated_at=NOW))
        rows = await queue_rows(store, NOW)
        assert [(row.position, row.number, row.check_title) for row in rows] == [
            (1, 3, "next_for_review"), (1, 2, "alternative"), (1, 4, "alternative"), (2, 1, "queued"),
        ]
    finally:
        await store.close()
