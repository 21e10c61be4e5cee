"""The review queue's pure model: order, eligibility memory, overlap holds, window, merge lane, texts and diff."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.model import Queue
from bot.queue.model import (
    DesiredCheck,
    Entry,
    Merge,
    Plan,
    Push,
    Snapshot,
    UpdateBranch,
    band,
    base_priority,
    desired_checks,
    diff,
    next_eligible_since,
    plan,
)
from bot.queue.model import _overlaps as _overlaps  # the reference test below compares it
from bot.queue.texts import (
    FIELDS,
    NEAR,
    REASONS,
    STATES,
    SUMMARY_LIMIT,
    TITLE_LIMIT,
    Reason,
    State,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
BASE_SHA = "abc1234def5678"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "review-queue.md"


def ready(number: int, *, minutes: int = 0, **changes: Any) -> Entry:
    """An eligible entry that became eligible `minutes` after T0."""
    values: dict[str, Any] = {
        "head_sha": f"{number:040x}",
        "title": f"PR {number}",
        "url": f"https://github.com/octo/repo/pull/{number}",
        "ci": "success",
        "eligible_since": T0 + timedelta(minutes=minutes),
    }
    values.update(changes)
    return Entry(number, **values)


def evaluate(*entries: Entry, now: datetime | None = None, **config: Any) -> Plan:
    return plan(Snapshot("octo/repo", "main", BASE_SHA, entries), Queue(**config), now or T0 + timedelta(hours=1))


def titles(result: Plan) -> dict[int, str]:
    return {number: check.title for number, check in result.checks.items()}


# ---- Order ---------------------------------------------------------------------------------------------------


def test_bands_order_urgent_high_normal_low() -> None:
    result = evaluate(
        ready(1, labels=frozenset({"priority:low"})),
        ready(2),
        ready(3, labels=frozenset({"priority:high"})),
        ready(4, labels=frozenset({"Priority:Urgent"})),
    )
    assert result.order == (4, 3, 2, 1)


def test_command_priority_overrides_labels_and_the_most_urgent_label_wins() -> None:
    assert base_priority(ready(1, labels=frozenset({"priority:low", "priority:high"}))) == "high"
    assert base_priority(ready(1, labels=frozenset({"priority:urgent"}), priority="low")) == "low"
    assert base_priority(ready(1, labels=frozenset({"kickoff"}))) == "normal"


def test_aging_raises_one_band_per_aging_hours_up_to_urgent() -> None:
    config = Queue(aging_hours=24)
    low = ready(1, labels=frozenset({"priority:low"}))
    assert band(low, config, T0 + timedelta(hours=23, minutes=59)) == "low"
    assert band(low, config, T0 + timedelta(hours=24)) == "normal"
    assert band(low, config, T0 + timedelta(hours=48)) == "high"
    assert band(low, config, T0 + timedelta(hours=72)) == "urgent"
    assert band(low, config, T0 + timedelta(days=365)) == "urgent"
    assert band(low, Queue(aging_hours=0), T0 + timedelta(days=365)) == "low"


def test_a_low_priority_pr_waiting_long_overtakes_newer_normal_ones() -> None:
    now = T0 + timedelta(hours=30)
    old_low = ready(1, labels=frozenset({"priority:low"}))
    newer_normal = [ready(number, minutes=60 * 20) for number in (2, 3)]
    assert evaluate(old_low, *newer_normal, now=now, aging_hours=24).order == (1, 2, 3)
    assert evaluate(old_low, *newer_normal, now=now, aging_hours=0).order == (2, 3, 1)
    # Before a whole aging period it stays behind.
    assert evaluate(old_low, *newer_normal, now=T0 + timedelta(hours=23), aging_hours=24).order == (2, 3, 1)


def test_aged_entries_tie_with_fresh_urgent_ones_and_the_earlier_goes_first() -> None:
    now = T0 + timedelta(hours=100)
    aged = ready(1, labels=frozenset({"priority:low"}))
    fresh_urgent = ready(2, minutes=60 * 99, priority="urgent")
    assert evaluate(fresh_urgent, aged, now=now, aging_hours=24).order == (1, 2)


def test_ties_break_by_eligible_time_then_number() -> None:
    result = evaluate(ready(5, minutes=10), ready(3, minutes=10), ready(9, minutes=5), ready(1, minutes=20))
    assert result.order == (9, 3, 5, 1)


def test_bump_moves_to_the_front_above_every_band_latest_bump_first() -> None:
    entries = (
        ready(1, priority="urgent"),
        ready(2, labels=frozenset({"priority:low"}), bumped_at=T0 + timedelta(minutes=30)),
        ready(3, bumped_at=T0 + timedelta(minutes=40)),
        ready(4),
    )
    assert evaluate(*entries).order == (3, 2, 1, 4)
    assert "**Bumped** to the front" in evaluate(*entries).checks[3].summary


def test_skip_lets_the_next_one_go_ahead_once() -> None:
    first, second, third = ready(1), ready(2, minutes=1), ready(3, minutes=2)
    before = evaluate(first, second, third)
    assert before.behind(1) == 2
    assert before.behind(3) is None
    assert before.behind(99) is None
    skipped = replace(first, let_ahead=before.behind(1))
    assert evaluate(skipped, second, third).order == (2, 1, 3)
    # Once #2 has left the queue, the skip is spent: #1 is first again, ahead of #3.
    assert evaluate(skipped, third).order == (1, 3)
    # A skip naming an entry already behind it changes nothing.
    assert evaluate(first, replace(second, let_ahead=1), third).order == (1, 2, 3)


def test_only_kickoff_prs_or_labelled_human_prs_are_queued() -> None:
    human = ready(1, kickoff=False)
    labelled = ready(2, kickoff=False, labels=frozenset({"Kickoff:Queue"}))
    result = evaluate(human, labelled, ready(3, minutes=5))
    assert result.order == (2, 3)
    assert result.checks[1].conclusion == "neutral"
    assert result.checks[1].title == "Not in the review queue"
    assert "#1" not in result.checks[2].summary
    assert next_eligible_since(human, Push.NONE, T0) is None


# ---- eligible_since ----------------------------------------------------------------------------------------


def test_eligible_since_starts_when_it_first_becomes_eligible() -> None:
    fresh = Entry(1, "a" * 40, ci="pending")
    assert next_eligible_since(fresh, Push.NONE, T0) is None
    assert next_eligible_since(replace(fresh, ci="success"), Push.NONE, T0) == T0


@pytest.mark.parametrize("push", [Push.UPDATE, Push.REVIEW_ANSWER])
def test_eligible_since_is_kept_across_an_update_or_review_answer_push(push: Push) -> None:
    placed = ready(1)
    rerunning = replace(placed, head_sha="f" * 40, ci="pending")
    kept = next_eligible_since(rerunning, push, T0 + timedelta(hours=5))
    assert kept == placed.eligible_since
    green = replace(rerunning, ci="success", eligible_since=kept)
    assert next_eligible_since(green, Push.NONE, T0 + timedelta(hours=6)) == placed.eligible_since
    # While CI re-runs it keeps its position in the order.
    assert evaluate(ready(2, minutes=5), replace(rerunning, eligible_since=kept)).order == (1, 2)


def test_eligible_since_is_kept_across_a_conflict_resolved_by_a_rebase() -> None:
    placed = ready(1)
    conflicting = replace(placed, conflicts=True)
    assert next_eligible_since(conflicting, Push.NONE, T0 + timedelta(hours=1)) == placed.eligible_since
    assert evaluate(conflicting).checks[1].title == "Dequeued: CONFLICT_WITH_BASE"
    rebased = replace(conflicting, conflicts=False, ci="pending", head_sha="e" * 40)
    assert next_eligible_since(rebased, Push.UPDATE, T0 + timedelta(hours=2)) == placed.eligible_since


def test_eligible_since_resets_after_a_real_ineligible_period() -> None:
    placed = ready(1)
    later = T0 + timedelta(hours=3)
    failing = replace(placed, ci="failure")
    after_failure = next_eligible_since(failing, Push.NONE, T0 + timedelta(hours=1))
    assert after_failure is None
    fixed = replace(failing, ci="success", eligible_since=after_failure)
    assert next_eligible_since(fixed, Push.NONE, later) == later
    # A draft period, and new work pushed, reset it too.
    assert next_eligible_since(replace(placed, draft=True), Push.NONE, later) is None
    assert next_eligible_since(replace(placed, ci="pending"), Push.OTHER, later) is None
    assert next_eligible_since(placed, Push.OTHER, later) == later
    assert next_eligible_since(replace(placed, closed=True), Push.NONE, later) is None


def test_a_hold_keeps_the_place_and_an_unqueue_loses_it() -> None:
    placed = ready(1)
    assert next_eligible_since(replace(placed, held=True), Push.NONE, T0 + timedelta(hours=9)) == T0
    assert next_eligible_since(replace(placed, unqueued=True), Push.NONE, T0 + timedelta(hours=9)) is None
    for reason in Reason:
        expected = T0 if REASONS[reason].keeps_place else None
        assert next_eligible_since(replace(placed, dequeued=reason), Push.NONE, T0 + timedelta(hours=9)) == expected


# ---- Overlap holds and the review window ---------------------------------------------------------------------


def test_an_entry_overlapping_one_ahead_waits_until_it_leaves() -> None:
    first = ready(1, files=frozenset({"src/foo.py", "README.md"}))
    second = ready(2, minutes=1, files=frozenset({"src/foo.py", "src/bar.py"}))
    third = ready(3, minutes=2, files=frozenset({"docs/x.md"}))
    result = evaluate(first, second, third, review_window=2)
    assert result.checks[2].title == "Waiting: overlaps with #1 (src/foo.py)"
    assert result.verdicts[2].state is State.OVERLAP
    assert result.window == (1, 3)
    assert result.checks[3].title == "Next for review"
    # #1 merged (gone from the snapshot) or blocked: #2 is released.
    assert titles(evaluate(second, third, review_window=2))[2] == "Next for review"
    assert titles(evaluate(replace(first, ci="failure"), second, third, review_window=2))[2] == "Next for review"
    assert titles(evaluate(first, second, third, review_window=2, hold_overlaps=False))[2] == "Next for review"


def test_overlap_title_counts_the_other_shared_files() -> None:
    files = frozenset({"a.py", "b.py", "c.py"})
    result = evaluate(ready(1, files=files), ready(2, minutes=1, files=files))
    assert result.checks[2].title == "Waiting: overlaps with #1 (a.py and 2 more)"


def test_overlaps_chain_through_held_entries() -> None:
    result = evaluate(
        ready(1, files=frozenset({"a"})),
        ready(2, minutes=1, files=frozenset({"a", "b"})),
        ready(3, minutes=2, files=frozenset({"b"})),
    )
    assert result.verdicts[3].other == 2


def test_review_window_of_one() -> None:
    result = evaluate(*(ready(number, minutes=number) for number in (41, 42, 43, 44)), review_window=1)
    assert result.window == (41,)
    assert titles(result) == {
        41: "Next for review",
        42: "Queued for review: 2nd in line — review #41 first",
        43: "Queued for review: 3rd in line — review #41 first",
        44: "Queued for review: waiting for its turn",  # beyond the first NEAR: no place shown
    }


def test_review_window_of_three() -> None:
    result = evaluate(*(ready(number, minutes=number) for number in (41, 42, 43, 44)), review_window=3)
    assert result.window == (41, 42, 43)
    assert [titles(result)[n] for n in (41, 42, 43)] == ["Next for review"] * 3
    assert titles(result)[44] == "Queued for review: waiting for its turn"


def test_queued_entries_point_at_the_first_one_still_needing_a_review() -> None:
    result = evaluate(
        ready(1, review="approved"),
        ready(2, minutes=1),
        ready(3, minutes=2),
        ready(4, minutes=3, review="changes_requested"),
        ready(5, minutes=4),
        review_window=2,
    )
    assert titles(result) == {
        1: "Approved: updating with main",
        2: "Next for review",
        3: "Queued for review: 3rd in line — review #2 first",
        4: "Changes requested: waiting for a new push",
        5: "Queued for review: waiting for its turn",
    }
    near = evaluate(ready(1, review="approved"), ready(2, minutes=1, review="approved"), ready(3, minutes=2))
    assert titles(near)[2] == "Approved: 2nd in line — #1 merges first"
    far = evaluate(*(ready(n, minutes=n) for n in range(1, 5)), ready(9, minutes=9, review="approved"))
    assert titles(far)[9] == "Approved: waiting for its turn to merge"
    assert all(check.status == "in_progress" and check.conclusion is None for check in result.checks.values())


# ---- Merge lane ----------------------------------------------------------------------------------------------


def test_merge_lane_from_review_to_update_to_ci_to_success() -> None:
    head = ready(7)
    assert evaluate(head).checks[7].title == "Next for review"
    assert evaluate(replace(head, review="changes_requested")).verdicts[7].state is State.CHANGES_REQUESTED

    approved = replace(head, review="approved")
    updating = evaluate(approved, update_method="rebase")
    assert updating.checks[7].title == "Approved: updating with main"
    assert updating.actions == (UpdateBranch(7, approved.head_sha, BASE_SHA, "rebase"),)

    updated = replace(approved, head_sha="9" * 40, contains_base=True, ci="pending")
    waiting = evaluate(updated, ready(8, minutes=5))
    assert waiting.head == 7
    assert waiting.checks[7].title == "Approved: waiting for CI on the updated head"
    assert waiting.actions == ()

    green = replace(updated, ci="success")
    manual = evaluate(green, ready(8, minutes=5))
    assert manual.checks[7].title == "Up next to merge: tested on main@abc1234"
    assert (manual.checks[7].status, manual.checks[7].conclusion) == ("completed", "success")
    assert manual.checks[7].head_sha == "9" * 40
    assert manual.actions == ()

    auto = evaluate(green, merge="auto", merge_method="rebase")
    assert auto.actions == (Merge(7, "rebase", "9" * 40),)


def test_only_the_head_may_be_success() -> None:
    entries = [ready(n, minutes=n, review="approved", contains_base=True) for n in range(1, 6)]
    result = evaluate(*entries, review_window=5)
    assert [n for n, check in result.checks.items() if check.conclusion == "success"] == [1]
    assert all(check.conclusion is None for n, check in result.checks.items() if n != 1)


# ---- Blocked entries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "title", "conclusion"),
    [
        ({"draft": True}, "Not queued: draft", "action_required"),
        ({"ci": "failure", "failing_checks": ("lint",)}, "Not queued: CI failing (lint)", "action_required"),
        ({"ci": "failure"}, "Not queued: CI failing (required checks)", "action_required"),
        ({"ci": "pending", "eligible_since": None}, "Not queued: waiting for CI", None),
        ({"conflicts": True, "eligible_since": None}, "Not queued: conflicts with main", "action_required"),
        ({"conflicts": True}, "Dequeued: CONFLICT_WITH_BASE", "failure"),
        ({"held": True}, "On hold", "action_required"),
        ({"unqueued": True}, "Dequeued: MANUAL", "failure"),
        ({"closed": True}, "Dequeued: CLOSED", "failure"),
        ({"dequeued": Reason.UPDATE_FAILED}, "Dequeued: UPDATE_FAILED", "failure"),
        ({"dequeued": Reason.CHECKS_TIMED_OUT}, "Dequeued: CHECKS_TIMED_OUT", "failure"),
    ],
)
def test_blocked_entries_say_why(changes: dict[str, Any], title: str, conclusion: str | None) -> None:
    result = evaluate(ready(1, **changes), ready(2, minutes=1))
    check = result.checks[1]
    assert (check.title, check.conclusion) == (title, conclusion)
    assert check.status == ("in_progress" if conclusion is None else "completed")
    assert 1 not in result.order
    assert result.head == 2


def test_failing_check_names_are_listed_and_bounded() -> None:
    names = tuple(f"check-{index}" for index in range(12))
    check = evaluate(ready(1, ci="failure", failing_checks=names)).checks[1]
    assert check.title == "Not queued: CI failing (check-0, check-1, check-2 and 9 more)"
    assert "`check-9` and 2 more" in check.summary


def test_dequeue_summaries_say_whether_the_place_is_kept() -> None:
    kept = evaluate(ready(1, dequeued=Reason.UPDATE_FAILED)).checks[1].summary
    lost = evaluate(ready(1, unqueued=True)).checks[1].summary
    assert "It keeps its place in the queue." in kept
    assert "It loses its place" in lost


def test_a_disabled_queue_passes_everything_neutrally() -> None:
    result = evaluate(ready(1, review="approved", contains_base=True), ready(2, draft=True), enabled=False)
    assert {check.conclusion for check in result.checks.values()} == {"neutral"}
    assert result.actions == ()
    assert result.order == ()


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        evaluate(ready(1), now=datetime(2025, 1, 1))


def test_a_snapshot_holds_each_pull_request_once() -> None:
    with pytest.raises(ValueError, match="once"):
        Snapshot("octo/repo", "main", BASE_SHA, (ready(1), ready(1)))


# ---- diff ----------------------------------------------------------------------------------------------------


def test_diff_writes_only_what_changed() -> None:
    entries = (ready(1, review="approved", contains_base=True), ready(2, minutes=1), ready(3, draft=True))
    snapshot = Snapshot("octo/repo", "main", BASE_SHA, entries)
    desired = desired_checks(snapshot, Queue(), T0)
    assert diff({}, desired)
    assert all(write.create for write in diff({}, desired))
    assert diff(desired, desired_checks(snapshot, Queue(), T0)) == []

    pushed = replace(entries[1], head_sha="7" * 40)
    changed = desired_checks(replace(snapshot, entries=(entries[0], pushed, entries[2])), Queue(), T0)
    writes = diff(desired, changed)
    assert [(write.number, write.create) for write in writes] == [(2, True)]


def test_diff_takes_success_away_before_granting_it() -> None:
    old = {
        1: DesiredCheck("a", "completed", "success", "x", ""),
        2: DesiredCheck("b", "in_progress", None, "y", ""),
    }
    new = {
        1: DesiredCheck("a", "in_progress", None, "x", ""),
        2: DesiredCheck("b", "completed", "success", "y", ""),
        3: DesiredCheck("c", "in_progress", None, "z", ""),
    }
    assert [write.number for write in diff(old, new)] == [1, 3, 2]
    assert [write.create for write in diff(old, new)] == [False, True, False]


# ---- Texts -----------------------------------------------------------------------------------------------------


def test_every_state_and_reason_has_a_row_that_formats() -> None:
    assert set(STATES) == set(State)
    assert set(REASONS) == set(Reason)
    fields = dict.fromkeys(FIELDS, "x")
    for row in STATES.values():
        assert (row.status == "completed") == (row.conclusion is not None)
        assert len(row.title.format_map(fields)) <= TITLE_LIMIT
        row.meaning.format_map(fields)
    for reason_row in REASONS.values():
        reason_row.meaning.format_map(fields)
    assert [state for state, row in STATES.items() if row.conclusion == "success"] == [State.MERGE_READY]
    assert all(row.conclusion != "neutral" for state, row in STATES.items() if state not in _OUTSIDE_THE_QUEUE)


_OUTSIDE_THE_QUEUE = {State.NOT_IN_QUEUE, State.QUEUE_OFF}


def test_docs_list_every_state_title_and_reason() -> None:
    docs = DOCS.read_text()
    for reason in Reason:
        assert f"| `{reason}` | {'yes' if REASONS[reason].keeps_place else 'no'} |" in docs
    for row in STATES.values():
        stem = re.split(r"[:{(]", row.title)[0].strip()
        assert stem in docs, stem


def test_untrusted_titles_cannot_break_the_table() -> None:
    evil = "a | b\n| --- |\n<img src=x> [link](http://evil) @everyone `x` **y**"
    summary = evaluate(ready(1, title=evil), ready(2, minutes=1)).checks[2].summary
    row = next(line for line in summary.splitlines() if line.startswith("| 1 |"))
    assert row.count("|") - row.count("\\|") == 4  # position, pull request, title
    assert "<img" not in summary.replace("\\<img", "")
    assert "[link]" not in summary
    assert "\\@everyone" in summary


def test_only_the_front_shows_the_front_and_every_queued_check_says_where_the_whole_order_is() -> None:
    entries = [ready(number, minutes=number) for number in range(1, 121)]
    link = "https://kickoff.example/"
    result = plan(Snapshot("octo/repo", "main", BASE_SHA, tuple(entries)), Queue(), T0 + timedelta(hours=1),
                  link=link)
    second = result.checks[2].summary
    assert "#### Front of the review queue of octo/repo → main" in second
    assert second.count("\n| ") == 2 + 2  # header, separator, the one ahead of it and itself
    assert "| **2** | **[#2](https://github.com/octo/repo/pull/2)** (this one) |" in second
    assert result.checks[NEAR].summary.count("\n| ") == 2 + NEAR
    assert "Front of the review queue" not in result.checks[1].summary  # nothing is ahead of the head
    last = result.checks[120].summary
    assert "Front of the review queue" not in last
    assert "| " not in last
    assert f"or the [dashboard]({link})." in last
    outside = evaluate(ready(5, kickoff=False)).checks[5].summary
    assert "whole review order" not in outside


def _checks_written(before: Plan, after: Plan) -> list[int]:
    return [write.number for write in diff(before.checks, after.checks)]


def test_a_head_merge_in_a_queue_of_a_thousand_rewrites_a_handful_of_checks() -> None:
    entries = [ready(number, minutes=number) for number in range(1, 1001)]
    before = evaluate(*entries)
    after = evaluate(*entries[1:])
    changed = _checks_written(before, after)
    assert changed == [2, 3, 4]  # the new head, and the two that moved up into the front
    assert _checks_written(before, evaluate(*entries, ready(2000, minutes=2000))) == [2000]
    # Short queues alike: one joining behind the front rewrites no check but its own.
    assert _checks_written(evaluate(*entries[:2]), evaluate(*entries[:3])) == [3]
    failing = evaluate(*entries[:500], replace(entries[500], ci="failure"), *entries[501:])
    assert _checks_written(before, failing) == [501]


def test_the_indexed_overlaps_decide_exactly_as_the_pairwise_scan() -> None:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.frozensets(st.sampled_from("abcdefgh"), max_size=4), max_size=40))
    def check(file_sets: list[frozenset[str]]) -> None:
        ordered = [ready(number, files=files) for number, files in enumerate(file_sets, start=1)]
        assert _overlaps(ordered) == _pairwise_overlaps(ordered)

    check()


def _pairwise_overlaps(ordered: list[Entry]) -> dict[int, tuple[int, tuple[str, ...]]]:
    """The model's old overlap scan, kept as the reference: every entry against every one ahead of it."""
    found: dict[int, tuple[int, tuple[str, ...]]] = {}
    for index, entry in enumerate(ordered):
        for ahead in ordered[:index]:
            shared = entry.files & ahead.files
            if shared:
                found[entry.number] = (ahead.number, tuple(sorted(shared)))
                break
    return found


_text = st.text(st.characters(codec="utf-8"), max_size=400)
_files = st.frozensets(st.text(min_size=1, max_size=300), max_size=6)
_entries = st.builds(
    Entry,
    number=st.integers(1, 10**9),
    head_sha=st.text(max_size=60),
    title=_text,
    url=st.one_of(st.just(""), _text, st.builds(lambda n: f"https://github.com/o/r/pull/{n}", st.integers(1, 9))),
    kickoff=st.booleans(),
    labels=st.frozensets(st.sampled_from(["kickoff:queue", "priority:low", "priority:urgent", "priority:high"])),
    closed=st.booleans(),
    draft=st.booleans(),
    ci=st.sampled_from(["pending", "success", "failure"]),
    failing_checks=st.lists(_text, max_size=20).map(tuple),
    conflicts=st.booleans(),
    review=st.sampled_from(["pending", "approved", "changes_requested"]),
    files=_files,
    contains_base=st.booleans(),
    priority=st.sampled_from([None, "urgent", "high", "normal", "low"]),
    held=st.booleans(),
    unqueued=st.booleans(),
    bumped_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    let_ahead=st.none() | st.integers(1, 10**9),
    dequeued=st.none() | st.sampled_from(Reason),
    eligible_since=st.none() | st.datetimes(timezones=st.just(UTC)),
    fanout=st.none() | st.integers(1, 4),
    rank=st.none() | st.integers(1, 5),
    preferred_at=st.none() | st.datetimes(timezones=st.just(UTC)),
)
_snapshots = st.builds(
    Snapshot,
    repository=_text,
    base=_text,
    base_sha=st.text(max_size=50),
    entries=st.lists(_entries, max_size=60, unique_by=lambda entry: entry.number).map(tuple),
)
_configs = st.builds(
    Queue,
    enabled=st.booleans(),
    review_window=st.integers(1, 50),
    merge=st.sampled_from(["manual", "auto"]),
    aging_hours=st.integers(0, 100),
    hold_overlaps=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(snapshot=_snapshots, config=_configs, now=st.datetimes(timezones=st.just(UTC)))
def test_any_snapshot_gives_checks_within_githubs_limits(snapshot: Snapshot, config: Queue, now: datetime) -> None:
    result = plan(snapshot, config, now)
    assert set(result.checks) == {entry.number for entry in snapshot.entries}
    for check in result.checks.values():
        assert 0 < len(check.title) <= TITLE_LIMIT
        assert "\n" not in check.title
        assert len(check.summary) <= SUMMARY_LIMIT
        assert (check.status == "completed") == (check.conclusion is not None)
    assert sum(check.conclusion == "success" for check in result.checks.values()) <= 1
    assert len(result.actions) <= 1
    assert diff(result.checks, plan(snapshot, config, now).checks) == []


def test_a_huge_queue_of_huge_texts_stays_within_the_summary_limit() -> None:
    big = "|" * 10_000
    entries = [
        ready(n, minutes=n, title=big, url=big, files=frozenset({big}), failing_checks=(big,) * 50)
        for n in range(1, 400)
    ]
    result = plan(Snapshot(big, big, big, tuple(entries)), Queue(review_window=50), T0)
    assert max(len(check.summary) for check in result.checks.values()) <= SUMMARY_LIMIT
    assert max(len(check.title) for check in result.checks.values()) <= TITLE_LIMIT
