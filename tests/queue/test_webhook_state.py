"""The queue's state from webhooks (issue 15): real deliveries through the inbox, the dispatcher and the queue
handlers into a real database; GitHub is the shared FakeGitHub, which records every call.

A reconcile caused by one pull request's event reads that pull request at most, whatever the queue's size; what a
webhook never said (a missed delivery) is found and repaired by the sweep, and counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.handlers.harness import DEFAULT_BRANCH, FULL_NAME, OWNER, REPO, Harness, harness
from tests.queue.support import sha
from tests.queue.webhooks import CI_APP, add_prs, check_run_payload, ci_run, pull_payload

WRITES = frozenset({"create_check_run", "update_check_run", "update_branch", "merge_pull", "comment"})
CONFIG_READS = frozenset({"get_file"})  # the repository config: cached by issue 15 part 3, not the queue's


@pytest.fixture
async def h(database_url: str) -> AsyncIterator[Harness]:
    async with harness(database_url) as world:
        world.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)] = sha("base")
        world.gh.permissions["rev"] = "write"
        yield world


def calls(h: Harness, since: int) -> tuple[list[str], list[str]]:
    """The reads (the config's aside) and the writes made since `since`."""
    made = [verb for verb, _args in h.gh.calls[since:]]
    return ([v for v in made if v not in WRITES and v not in CONFIG_READS], [v for v in made if v in WRITES])


async def one_event(h: Harness) -> list[tuple[list[str], list[str]]]:
    """The calls of three deliveries that change nothing, each about one pull request, after a sweep."""
    await h.services.queue.sweep()  # first sight of every entry: read once
    found = []
    for event, payload in (
        ("check_run", check_run_payload(h, 6, "completed", "success")),  # #6 is approved
        ("pull_request", pull_payload(h, 7, "edited", "2026-03-01T12:00:00Z")),
        ("check_run", check_run_payload(h, 8, "completed", "success")),
    ):
        before = len(h.gh.calls)
        await h.deliver(event, payload)
        found.append(calls(h, before))
    return found


async def test_one_pull_requests_event_reads_at_most_two_whatever_the_queue_size(h: Harness) -> None:
    await add_prs(h, 10)
    small = await one_event(h)
    await add_prs(h, 50, first=11)
    large = await one_event(h)
    for reads, writes in large:
        assert writes == []
        assert len(reads) <= 2, reads
    # The base branch, and the live permission of #6's approving reviewer: never another pull request.
    assert [sorted(reads) for reads, _writes in large] == [
        ["get_branch_sha", "get_collaborator_permission"], ["get_branch_sha"], ["get_branch_sha"]
    ]
    assert small == large
    assert h.services.queue.facts.drift.total == 0


async def test_first_sight_reads_then_webhooks_keep_the_facts(h: Harness) -> None:
    await add_prs(h, 3)
    before = len(h.gh.calls)
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "success"))
    reads, _writes = calls(h, before)
    assert reads.count("get_pull_request") == 3  # first sight of each entry
    # A new push on #1: the payload says so. A commit pushed just now gets every check run and status as a
    # webhook from here on, so its (empty) stored checks are trusted: nothing is read but the base.
    pull = h.gh.pulls[(OWNER, REPO, 1)]
    new_head = sha("head-1-again")
    h.gh.pulls[(OWNER, REPO, 1)] = replace(pull, head_sha=new_head)
    h.gh.foreign_check_runs[(OWNER, REPO, new_head)] = [ci_run(1, new_head, None)]
    before = len(h.gh.calls)
    await h.deliver("pull_request", pull_payload(h, 1, "synchronize", "2026-03-01T12:05:00Z"))
    reads, writes = calls(h, before)
    assert "get_pull_request" not in reads
    assert sorted(reads) == ["get_branch_sha"]
    assert writes  # #1's check moves to its new head (CI pending)
    row = await h.services.queue.store.get(FULL_NAME, 1)
    assert row is not None
    assert row.head_sha == new_head
    # CI finishes: known from the webhook alone.
    h.gh.foreign_check_runs[(OWNER, REPO, new_head)] = [ci_run(1, new_head, "success")]
    before = len(h.gh.calls)
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "success"))
    reads, _writes = calls(h, before)
    assert sorted(reads) == ["get_branch_sha", "list_pull_request_files"]  # the new head's files: once per head
    facts = await h.services.queue.facts.commits(FULL_NAME, [new_head])
    assert facts[new_head].run_list() == [("ci", "completed", "success", CI_APP)]


async def test_late_twice_and_out_of_order_deliveries_do_not_go_back(h: Harness) -> None:
    await add_prs(h, 2)
    await h.services.queue.sweep()
    facts = h.services.queue.facts
    head = h.gh.pulls[(OWNER, REPO, 1)].head_sha
    # Completed, then the earlier `created` (in progress) arrives late, and the completion again.
    h.gh.foreign_check_runs[(OWNER, REPO, head)] = [ci_run(1, head, "failure")]
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "failure"))
    await h.deliver("check_run", check_run_payload(h, 1, "created", None))
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "failure"))
    assert (await facts.commits(FULL_NAME, [head]))[head].run_list() == [("ci", "completed", "failure", CI_APP)]
    # A newer pull request payload (draft), then an older one (ready): the newer one stays.
    h.gh.pulls[(OWNER, REPO, 2)] = replace(h.gh.pulls[(OWNER, REPO, 2)], draft=True)
    await h.deliver("pull_request", pull_payload(h, 2, "converted_to_draft", "2026-03-01T12:10:00Z"))
    stale = pull_payload(h, 2, "ready_for_review", "2026-03-01T12:09:00Z")
    stale["pull_request"]["draft"] = False
    await h.deliver("pull_request", stale)
    known = await facts.pull(FULL_NAME, 2)
    assert known is not None
    assert known.pull is not None
    assert known.pull.draft
    # The sweep finds nothing to repair: every delivery was applied, in the right order.
    before = facts.drift.total
    await h.services.queue.sweep()
    assert facts.drift.total == before


async def test_a_missed_webhook_is_repaired_and_counted_by_the_sweep(h: Harness) -> None:
    await add_prs(h, 3)
    await h.services.queue.sweep()
    facts = h.services.queue.facts
    assert facts.drift.total == 0
    # CI of #2 goes red, and its webhook is lost; an event of #1 does not read #2.
    head = h.gh.pulls[(OWNER, REPO, 2)].head_sha
    h.gh.foreign_check_runs[(OWNER, REPO, head)] = [ci_run(2, head, "failure")]
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "success"))
    assert facts.drift.total == 0
    # The sweep reads everything: the drift is repaired and counted, and #2's check says so.
    outcome_writes = len([v for v, _ in h.gh.calls if v in WRITES])
    await h.services.queue.sweep()
    assert facts.drift.checks == 1
    assert len([v for v, _ in h.gh.calls if v in WRITES]) > outcome_writes
    runs = [run for _, run in sorted(h.gh.check_runs.items()) if run["head_sha"] == head]
    assert "CI failing" in runs[-1]["title"], runs[-1]["title"]


async def test_facts_older_than_the_sweeps_window_are_read_again(h: Harness) -> None:
    """A downtime: no sweep and no webhooks for longer than the window; the next event reads every entry."""
    await add_prs(h, 3)
    await h.services.queue.sweep()
    h.clock.advance(seconds=h.services.queue.trust.total_seconds() + 1)
    before = len(h.gh.calls)
    await h.deliver("check_run", check_run_payload(h, 1, "completed", "success"))
    reads, _writes = calls(h, before)
    assert reads.count("get_pull_request") == 3
