"""One review slot per fan-out through the queue service: a real database (the rows' `trigger_id`, `rank` and
`preferred_at`), the shared FakeGitHub, and the checks the service writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.queue.support import World, world

ALT = "Alternative to #{n} — review only if #{n} is rejected"


@pytest.fixture
async def w(database_url: str) -> AsyncIterator[World]:
    async with world(database_url) as built:
        yield built


async def test_the_service_keeps_a_fanout_in_one_slot_led_by_its_best_ranked_sibling(w: World) -> None:
    await w.add_pr(1)
    await w.add_fanout({2: 3, 3: 1, 4: 2})
    outcome = await w.reconcile()
    assert outcome.plan is not None
    assert outcome.plan.order == (1, 3, 4, 2)
    assert w.titles() == {
        1: "Next for review",
        2: ALT.format(n=3),
        3: "Queued for review: 2nd in line — review #1 first",
        4: ALT.format(n=3),
    }
    assert (await w.row(4)).queue_check is not None
    assert '"state": "alternative"' in ((await w.row(4)).queue_check or "")
    assert (await w.reconcile()).writes == []


async def test_a_leader_closed_unmerged_hands_its_slot_to_the_next_ranked_sibling(w: World) -> None:
    await w.add_fanout({1: 1, 2: 3, 3: 2})
    await w.reconcile()
    assert w.titles() == {1: "Next for review", 2: ALT.format(n=1), 3: ALT.format(n=1)}
    w.close(1)
    await w.reconcile()
    assert w.titles() == {1: "Dequeued: CLOSED", 2: ALT.format(n=3), 3: "Next for review"}
    assert (await w.row(1)).state == "closed"


async def test_a_leader_with_changes_requested_hands_its_slot_over(w: World) -> None:
    await w.add_fanout({1: 1, 2: 2, 3: 3})
    await w.add_pr(4)
    await w.reconcile()
    w.review(1, "CHANGES_REQUESTED")
    await w.reconcile()
    assert w.titles() == {
        1: ALT.format(n=2),
        2: "Next for review",
        3: ALT.format(n=2),
        4: "Queued for review: 2nd in line — review #2 first",
    }
    w.review(1, "CHANGES_REQUESTED", who="stranger")  # a review that does not count changes nothing more
    w.review(2, "CHANGES_REQUESTED", who="stranger")
    await w.reconcile()
    assert w.titles()[2] == "Next for review"


async def test_a_preference_makes_a_sibling_the_leader_whatever_the_ranks(w: World) -> None:
    await w.add_fanout({1: 1, 2: 2, 3: 3})
    await w.reconcile()
    row = await w.row(3)
    await w.service.store.update(row.id, preferred_at=w.clock())
    await w.reconcile()
    assert w.titles() == {1: ALT.format(n=3), 2: ALT.format(n=3), 3: "Next for review"}
    assert [sibling.number for sibling in await w.service.store.siblings(row)] == [1, 2]
