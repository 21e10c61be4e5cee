"""The queue service against the shared FakeGitHub and a real database: GitHub facts in, check writes and merge
lane actions out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.github.models import CommitStatus, Permission, PullReview
from bot.queue.service import QueueService, ci_of, classify_push, review_of
from bot.queue.store import Memory
from bot.queue.texts import Reason
from tests.queue.support import KEY, OWNER, REPO, World, world


@pytest.fixture
async def w(database_url: str) -> AsyncIterator[World]:
    async with world(database_url) as built:
        yield built


async def test_facts_become_checks_and_a_second_reconcile_writes_nothing(w: World) -> None:
    await w.add_pr(1, ci="success")
    await w.add_pr(2, ci="pending")
    await w.add_pr(3, ci="failure")
    await w.add_pr(4, draft=True)
    await w.add_pr(5, kickoff=False)  # a human pull request without `kickoff:queue`
    w.status(3, "lint", "error")
    outcome = await w.reconcile()
    assert w.titles() == {
        1: "Next for review",
        2: "Not queued: waiting for CI",
        3: "Not queued: CI failing (ci, lint)",
        4: "Not queued: draft",
        5: "Not in the review queue",
    }
    checks = w.checks()
    assert (checks[1]["conclusion"], checks[3]["conclusion"], checks[5]["conclusion"]) == (
        None, "action_required", "neutral"
    )
    assert [a.identifier for a in checks[3]["actions"]] == ["bump", "unqueue"]
    assert checks[5]["actions"] == ()
    assert len(outcome.writes) == 5
    before = len(w.gh.calls)
    again = await w.reconcile()
    assert again.writes == []
    assert w.writes(before) == []
    # Reads stay bounded: per entry the pull request and labels, CI and reviews only where they can matter.
    assert again.reads <= 1 + 5 * 2 + 3 * 3


async def test_every_entry_s_files_stay_remembered_however_long_the_queue(w: World) -> None:
    """The files of each entry's head commit are read once, not on every reconcile, even when the queue has more
    entries than the cache started with (an LRU smaller than the entries it serves in turn would miss on all)."""
    w.service = QueueService(w.service.services, files_cache=4)
    for number in range(1, 13):
        await w.add_pr(number, files=(f"src/a{number}.py", "docs/shared.md" if number % 5 == 0 else "README"))
    await w.reconcile()
    assert len(w.gh.calls_to("list_pull_request_files")) == 12
    before = len(w.gh.calls)
    await w.reconcile()
    assert [verb for verb, _ in w.gh.calls[before:] if verb == "list_pull_request_files"] == []
    assert w.titles()[10] == "Waiting: overlaps with #5 (docs/shared.md)"  # and still used


async def test_the_merge_lane_updates_once_waits_for_ci_and_hands_success_on_only_after_a_merge(w: World) -> None:
    await w.add_pr(1)
    await w.add_pr(2)
    await w.reconcile()
    assert w.titles() == {1: "Next for review", 2: "Queued for review: 2nd in line — review #1 first"}
    w.review(1)
    w.review(2)
    start = len(w.gh.calls)
    old_head = w.head(1)
    w.gh.fail("update_branch", RuntimeError("GitHub is slow today"))  # the first attempt fails: retried later
    with pytest.raises(RuntimeError):
        await w.reconcile()
    assert w.title_on(old_head) == "Approved: updating with main"
    assert w.titles()[2] == "Approved: 2nd in line — #1 merges first"
    # The same head and base again: the update is tried again (it never happened), then never more.
    await w.reconcile()
    await w.reconcile()
    updates = [args for verb, args in w.writes(start) if verb == "update_branch"]
    assert [(args[3], args[4]) for args in updates] == [(1, old_head), (1, old_head)]
    assert w.head(1) != old_head  # the fake merged the base in: a new head
    w.ci(1, "pending")
    await w.reconcile()
    assert w.titles()[1] == "Approved: waiting for CI on the updated head"
    assert w.successes() == []
    row = await w.row(1)
    assert row.eligible_since is not None  # an update push keeps its place
    w.ci(1, "success")
    await w.reconcile()
    assert w.titles()[1] == f"Up next to merge: tested on main@{w.base_sha[:7]}"
    assert w.successes() == [1]
    # merge: manual. A person merges; only then does #2 head the lane (and is updated, never success at once).
    w.merge_by_hand(1)
    before = len(w.gh.calls)
    second = w.head(2)
    await w.reconcile()
    assert w.successes() == []
    assert w.title_on(second) == "Approved: updating with main"
    assert [args[3] for verb, args in w.writes(before) if verb == "update_branch"] == [2]
    assert (await w.row(1)).state == "merged"


async def test_auto_merge_names_the_head_it_expects_and_the_queue_advances(w: World) -> None:
    w.config("queue: {merge: auto, merge_method: rebase}\n")
    await w.add_pr(1, contains_base=True)
    await w.add_pr(2)
    w.review(1)
    w.review(2)
    head, second = w.head(1), w.head(2)
    outcome = await w.reconcile()
    merges = [args for verb, args in w.writes() if verb == "merge_pull"]
    assert merges == [(7, OWNER, REPO, 1, head, "rebase")]
    assert outcome.merged == [1]
    # The same reconcile went on: #2 is now the head and is being updated with the new base.
    assert [args[3] for verb, args in w.writes() if verb == "update_branch"] == [2]
    assert w.title_on(second) == "Approved: updating with main"
    assert w.successes() == []
    # Writes per advance: the success on #1, the merge, then #2's new state and its update.
    kinds = [verb for verb, _ in w.writes()]
    assert kinds.count("merge_pull") == 1
    assert len(kinds) <= 6


async def test_a_merge_refused_by_github_is_left_for_the_next_reconcile(w: World) -> None:
    from bot.github import Conflict

    w.config("queue: {merge: auto}\n")
    await w.add_pr(1, contains_base=True)
    w.review(1)
    w.gh.fail("merge_pull", Conflict("Head branch was modified", status=409))
    outcome = await w.reconcile()
    assert outcome.merged == []
    assert w.successes() == [1]
    await w.reconcile()
    assert w.pull(1).merged


async def test_a_conflict_with_the_base_after_update_shows_and_agent_update_plans_a_rebase(w: World) -> None:
    w.config("queue: {update_method: agent}\n")
    await w.add_pr(1)
    await w.add_pr(2)
    w.review(1)
    w.gh.conflicting.add((OWNER, REPO, 1))
    outcome = await w.reconcile()
    assert outcome.updated == [1]
    from sqlalchemy import select

    from bot.store.models import Run, Trigger

    async with w.services.store.sessions() as session:
        triggers = (await session.scalars(select(Trigger))).all()
        runs = (await session.scalars(select(Run))).all()
    assert [(t.issue_number, t.task, t.source, t.is_pull_request) for t in triggers] == [(1, "fix", "fix", True)]
    assert "Merge the latest `main`" in triggers[0].instructions
    assert [(r.pr_number, r.kind) for r in runs] == [(1, "followup")]
    await w.reconcile()  # planned once per head and base
    async with w.services.store.sessions() as session:
        assert len((await session.scalars(select(Trigger))).all()) == 1


async def test_update_refused_records_update_failed_and_requeue_clears_it(w: World) -> None:
    from bot.github import PermissionDenied

    await w.add_pr(1)
    await w.add_pr(2)
    w.review(1)
    w.gh.fail("update_branch", PermissionDenied("Resource not accessible by integration", status=403))
    await w.reconcile()
    await w.reconcile()
    assert (await w.row(1)).dequeued == Reason.UPDATE_FAILED.value
    assert w.titles()[1] == "Dequeued: UPDATE_FAILED"
    assert w.titles()[2] == "Next for review"


async def test_checks_that_never_report_time_out(w: World) -> None:
    await w.add_pr(1, contains_base=True, ci="pending")
    await w.add_pr(2)
    w.review(1)
    # #1 had its place already (it was green, then CI re-ran), so it stays the head while CI runs.
    row = await w.row(1)
    from bot.queue.store import QueueStore

    await QueueStore(w.services.store).update(row.id, eligible_since=w.clock() )
    await w.reconcile()
    assert w.titles()[1] == "Approved: waiting for CI on the updated head"
    w.clock.advance(hours=1)
    await w.reconcile()
    assert w.titles()[1] == "Approved: waiting for CI on the updated head"
    w.clock.advance(hours=1, minutes=1)
    await w.reconcile()
    assert w.titles()[1] == "Dequeued: CHECKS_TIMED_OUT"
    assert w.titles()[2] == "Next for review"
    # The checks report after all (a re-run): it is back, in its place.
    w.ci(1, "success")
    await w.reconcile()
    assert (await w.row(1)).dequeued is None
    assert w.titles()[1] == f"Up next to merge: tested on main@{w.base_sha[:7]}"


async def test_a_push_of_work_loses_the_place_an_update_keeps_it(w: World) -> None:
    await w.add_pr(1)
    await w.add_pr(2)
    await w.reconcile()
    first = (await w.row(1)).eligible_since
    w.clock.advance(minutes=5)
    w.push(1, ci="pending")
    await w.reconcile()
    assert (await w.row(1)).eligible_since is None
    assert w.titles()[2] == "Next for review"
    w.ci(1, "success")
    await w.reconcile()
    assert (await w.row(1)).eligible_since == w.clock()
    assert first is not None
    assert first < w.clock()
    assert w.titles()[1] == "Queued for review: 2nd in line — review #2 first"


async def test_overlapping_files_wait_and_files_are_read_once_per_head(w: World) -> None:
    await w.add_pr(1, files=("src/app.py", "README.md"))
    await w.add_pr(2, files=("src/app.py",))
    await w.add_pr(3, files=("docs/x.md",))
    await w.reconcile()
    assert w.titles()[2] == "Waiting: overlaps with #1 (src/app.py)"
    await w.reconcile()
    assert len(w.gh.calls_to("list_pull_request_files")) == 3


async def test_a_closed_pull_request_says_so_once_and_is_forgotten(w: World) -> None:
    await w.add_pr(1)
    await w.add_pr(2)
    await w.reconcile()
    w.gh.pulls[(OWNER, REPO, 1)] = w.pull(1).__class__(**{**w.pull(1).__dict__, "state": "closed"})
    await w.reconcile()
    assert w.titles()[1] == "Dequeued: CLOSED"
    assert w.titles()[2] == "Next for review"
    before = len(w.gh.calls)
    await w.reconcile()
    assert w.writes(before) == []
    assert not any(args[3] == 1 for verb, args in w.gh.calls[before:] if verb == "get_pull_request")


async def test_human_pull_requests_queue_with_the_label_and_priority_labels_order(w: World) -> None:
    await w.add_pr(1)
    await w.add_pr(2, kickoff=False, labels=("kickoff:queue", "priority:urgent"))
    await w.reconcile()
    assert w.titles() == {1: "Queued for review: 2nd in line — review #2 first", 2: "Next for review"}


async def test_no_checks_yet_is_pending_when_ci_runs_elsewhere(w: World) -> None:
    await w.add_pr(1)
    await w.add_pr(2, ci=None)  # CI has not reported on #2 yet, but it runs on #1
    await w.reconcile()
    assert w.titles()[2] == "Not queued: waiting for CI"


async def test_a_changed_base_moves_the_entry_to_its_new_queue(w: World) -> None:
    await w.add_pr(1)
    w.gh.branch_shas[(OWNER, REPO, "develop")] = "d" * 40
    await w.reconcile()
    w.gh.pulls[(OWNER, REPO, 1)] = w.pull(1).__class__(**{**w.pull(1).__dict__, "base_ref": "develop"})
    outcome = await w.reconcile()
    assert (await w.row(1)).base_ref == "develop"
    assert {key.base for key in outcome.elsewhere} == {"develop"}
    assert w.titles()[1] == "Next for review"


async def test_the_sweep_reconciles_every_queue(w: World) -> None:
    await w.add_pr(1)
    assert await w.service.sweep() == 1
    assert w.titles() == {1: "Next for review"}
    assert await w.service.store.queues() == [KEY]


async def test_a_reviewer_whose_permission_github_will_not_give_does_not_count(w: World) -> None:
    from bot.github import PermissionDenied

    w.config("queue: {merge: auto}\n")
    await w.add_pr(1, contains_base=True)
    w.review(1, who="someapp[bot]")
    w.gh.fail("get_collaborator_permission", PermissionDenied("Resource not accessible by integration", status=403))
    outcome = await w.reconcile()
    assert outcome.merged == []
    assert w.titles()[1] == "Next for review"
    assert "1 approval from \\@someapp\\[bot\\] did not count" in w.checks()[1]["summary"]
    # A writer's approval still moves it, in the same queue.
    w.review(1)
    assert (await w.reconcile()).merged == [1]


def test_ci_review_and_push_rules() -> None:
    runs = [("ci", "completed", "success", 1), ("review-queue", "completed", "success", 9), ("lint", "queued", None, 1)]
    assert ci_of(runs, [], ignore={"review-queue"}, own_app_id=9) == ("pending", ())
    assert ci_of(runs[:1], [CommitStatus("ext", "failure")], ignore=set(), own_app_id=None) == ("failure", ("ext",))
    assert ci_of([], [], ignore=set(), own_app_id=None) == ("success", ())
    assert ci_of([], [], ignore=set(), own_app_id=None, expect_checks=True) == ("pending", ())
    writers: dict[str, Permission] = {"a": "write", "b": "admin"}

    def decision(*reviews: PullReview) -> str:
        return review_of(reviews, writers).decision

    assert decision(PullReview(1, "a", "APPROVED"), PullReview(2, "b", "COMMENTED")) == "approved"
    assert decision(PullReview(1, "a", "CHANGES_REQUESTED"), PullReview(2, "a", "APPROVED")) == "approved"
    assert decision(PullReview(1, "a", "APPROVED"), PullReview(2, "b", "CHANGES_REQUESTED")) == "changes_requested"
    assert decision(PullReview(1, "a", "APPROVED"), PullReview(2, "a", "DISMISSED")) == "pending"
    assert decision(PullReview(1, "A", "APPROVED"), PullReview(2, "a", "COMMENTED")) == "approved"  # logins: any case
    from bot.queue.model import Push

    assert classify_push(Memory(), "x") is Push.NONE
    assert classify_push(Memory(seen_head="a"), "a") is Push.NONE
    assert classify_push(Memory(seen_head="a", updated_from="a"), "b") is Push.UPDATE
    assert classify_push(Memory(seen_head="a", seen_review="changes_requested"), "b") is Push.REVIEW_ANSWER
    assert classify_push(Memory(seen_head="a"), "b") is Push.OTHER
    memory = Memory(seen_head="a", pending_since=None, had_checks=True)
    assert Memory.load(memory.dump()) == memory
    assert Memory.load("not json") == Memory()
