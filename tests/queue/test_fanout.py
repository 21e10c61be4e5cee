"""One review slot per fan-out, in the pure model: the siblings together behind their leader, best first; only the
leader can be next for review or the head; `review_window` counts the fan-out once; a rejected leader hands over."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.config.model import Queue
from bot.queue.model import Entry, Snapshot, diff, leaders, review_order
from bot.queue.texts import NEAR, State
from tests.queue.test_model import BASE_SHA, T0, evaluate, ready, titles


def sibling(number: int, fanout: int, rank: int | None, *, minutes: int = 0, **changes: Any) -> Entry:
    return ready(number, minutes=minutes, fanout=fanout, rank=rank, **changes)


ALT = "Alternative to #{n} — review only if #{n} is rejected"


def alternative(leader: int) -> str:
    return ALT.format(n=leader)


def test_siblings_stay_together_best_first_and_take_one_slot() -> None:
    result = evaluate(
        ready(1, minutes=0),
        sibling(2, 7, 3, minutes=1),
        sibling(3, 7, 1, minutes=2),
        sibling(4, 7, 2, minutes=3),
        ready(5, minutes=1),
        review_window=2,
    )
    assert result.order == (1, 5, 3, 4, 2)
    assert result.window == (1, 5)
    assert result.head == 1
    assert result.slots == 3
    assert dict(result.alternatives) == {4: 3, 2: 3}
    assert {n: v.position for n, v in result.verdicts.items()} == {1: 1, 5: 2, 3: 3, 4: 3, 2: 3}
    assert titles(result) == {
        1: "Next for review",
        5: "Next for review",
        3: "Queued for review: 3rd in line — review #1 first",
        4: alternative(3),
        2: alternative(3),
    }


def test_only_the_leader_is_next_for_review_and_the_window_counts_the_fanout_once() -> None:
    alone = evaluate(sibling(1, 7, 2), sibling(2, 7, 1, minutes=1), sibling(3, 7, 3, minutes=2), review_window=3)
    assert alone.order == (2, 1, 3)
    assert alone.window == (2,)
    assert alone.head == 2
    assert titles(alone) == {2: "Next for review", 1: alternative(2), 3: alternative(2)}
    with_others = evaluate(
        sibling(1, 7, 1), sibling(2, 7, 2), sibling(3, 7, 3), ready(4, minutes=5), ready(5, minutes=6),
        review_window=2,
    )
    assert with_others.window == (1, 4)
    assert titles(with_others)[4] == "Next for review"
    assert titles(with_others)[5] == "Queued for review: 3rd in line — review #1 first"
    assert {n for n, v in with_others.verdicts.items() if v.state is State.NEXT_FOR_REVIEW} == {1, 4}


def test_unranked_siblings_are_led_by_the_lowest_number_and_a_preference_wins_over_ranks() -> None:
    unranked = evaluate(sibling(3, 7, None), sibling(2, 7, None, minutes=4), sibling(4, 7, None))
    assert unranked.order == (2, 3, 4)
    later = T0 + timedelta(minutes=30)
    preferred = evaluate(
        sibling(1, 7, 1), sibling(2, 7, 2, preferred_at=T0), sibling(3, 7, 3, preferred_at=later),
    )
    assert preferred.order == (3, 2, 1)  # the latest preference leads; an older one still sorts before the ranks
    assert titles(preferred) == {3: "Next for review", 2: alternative(3), 1: alternative(3)}


def test_the_alternative_check_waits_names_its_leader_and_explains() -> None:
    result = evaluate(sibling(1, 7, 1), sibling(2, 7, 2))
    check = result.checks[2]
    assert (check.status, check.conclusion) == ("in_progress", None)
    assert check.title == "Alternative to #1 — review only if #1 is rejected"
    assert check.summary.startswith(
        "Another attempt at the same request as #1, which leads their fan-out (ranked above this one, or chosen "
        "with `/agent prefer`). The fan-out takes one review slot: review #1; this one takes its place if #1 is "
        "closed without merging or gets changes requested, and closes as superseded when a sibling merges. "
        "`/agent prefer` here makes this one the leader."
    )
    assert "| **1** | **[#2](https://github.com/octo/repo/pull/2)** (this one) |" in check.summary


def test_a_leader_closed_unmerged_hands_its_slot_to_the_next_ranked_sibling() -> None:
    before = evaluate(sibling(1, 7, 1), sibling(2, 7, 3), sibling(3, 7, 2), ready(4, minutes=9))
    assert titles(before)[1] == "Next for review"
    after = evaluate(sibling(1, 7, 1, closed=True), sibling(2, 7, 3), sibling(3, 7, 2), ready(4, minutes=9))
    assert after.order == (3, 2, 4)
    assert titles(after) == {
        1: "Dequeued: CLOSED",
        3: "Next for review",
        2: alternative(3),
        4: "Queued for review: 2nd in line — review #3 first",
    }


def test_a_leader_with_changes_requested_hands_its_slot_over_unless_all_have_them() -> None:
    result = evaluate(sibling(1, 7, 1, review="changes_requested"), sibling(2, 7, 2), sibling(3, 7, 3))
    assert result.order == (2, 3, 1)
    assert titles(result) == {2: "Next for review", 3: alternative(2), 1: alternative(2)}
    rejected = evaluate(*(sibling(n, 7, n, review="changes_requested") for n in (1, 2, 3)))
    assert titles(rejected) == {
        1: "Changes requested: waiting for a new push", 2: alternative(1), 3: alternative(1)
    }


def test_taken_out_siblings_are_passed_over_and_blocked_ones_show_their_own_blocker() -> None:
    result = evaluate(
        sibling(1, 7, 1, unqueued=True), sibling(2, 7, 2, ci="failure", failing_checks=("lint",)),
        sibling(3, 7, 3, draft=True), sibling(4, 7, 4),
    )
    assert titles(result) == {
        1: "Dequeued: MANUAL",
        2: "Not queued: CI failing (lint)",  # it leads, but is not eligible: the fan-out waits for it
        3: "Not queued: draft",
        4: alternative(2),
    }
    assert result.order == ()
    assert result.verdicts[4].position is None


def test_an_alternative_is_never_the_head_and_never_merges() -> None:
    result = evaluate(
        sibling(1, 7, 1, eligible_since=T0 + timedelta(minutes=5)),
        sibling(2, 7, 2, review="approved", contains_base=True, eligible_since=T0),
        merge="auto",
    )
    assert result.head == 1
    assert result.actions == ()
    assert titles(result) == {1: "Next for review", 2: alternative(1)}


def test_siblings_do_not_hold_each_other_for_overlapping_files_but_slots_still_do() -> None:
    shared = frozenset({"src/app.py"})
    result = evaluate(
        sibling(1, 7, 1, files=shared), sibling(2, 7, 2, files=shared), ready(3, minutes=5, files=shared),
        review_window=3,
    )
    assert titles(result) == {1: "Next for review", 2: alternative(1), 3: "Waiting: overlaps with #1 (src/app.py)"}


def test_skip_on_a_leader_lets_the_next_slot_go_ahead_and_an_alternative_has_none_to_give() -> None:
    first = evaluate(sibling(1, 7, 1), sibling(2, 7, 2), ready(3, minutes=5))
    assert first.behind(1) == 3
    assert first.behind(2) is None
    skipped = evaluate(sibling(1, 7, 1, let_ahead=3), sibling(2, 7, 2), ready(3, minutes=5))
    assert skipped.order == (3, 1, 2)


def _fanouts(count: int, size: int = 3) -> list[Entry]:
    return [
        sibling(group * size + index + 1, group + 1, index + 1, minutes=group)
        for group in range(count)
        for index in range(size)
    ]


def test_a_head_merge_with_fanouts_rewrites_only_the_front_slots() -> None:
    entries = _fanouts(100)
    before = evaluate(*entries)
    assert before.slots == 100
    after = evaluate(*entries[3:])  # the first fan-out: its leader merged, its siblings closed as superseded
    changed = [write.number for write in diff(before.checks, after.checks)]
    assert changed == list(range(4, 13))  # the next three fan-outs, now the front; none further back
    assert titles(after)[4] == "Next for review"
    assert titles(after)[13] == "Queued for review: waiting for its turn"
    assert titles(after)[14] == alternative(13)
    assert after.slots == 99
    # The front table, up to each entry: its header, separator, and the entries of the first NEAR slots ahead of
    # it (the last of them sees them all); the head has nothing ahead of it.
    assert sum(1 for row in after.checks[12].summary.splitlines() if row.startswith("| ")) == 2 + NEAR * 3
    assert sum(1 for row in after.checks[7].summary.splitlines() if row.startswith("| ")) == 2 + 4
    assert "| " not in after.checks[4].summary


def test_leaders_groups_only_siblings_that_may_lead() -> None:
    entries = [sibling(1, 7, 2), sibling(2, 7, 1, closed=True), sibling(3, 8, None), ready(4)]
    assert {fanout: [e.number for e in members] for fanout, members in leaders(entries).items()} == {
        7: [1], 8: [3]
    }
    snapshot = Snapshot("octo/repo", "main", BASE_SHA, tuple(entries))
    order = [entry.number for entry in review_order(snapshot, Queue(), T0 + timedelta(hours=1))]
    assert order == list(evaluate(*entries).order) == [1, 3, 4]
