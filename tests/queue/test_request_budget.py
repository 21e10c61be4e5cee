"""What the queue does not ask GitHub again (issue 15): the facts of a pull request Kickoff just opened, the checks
of its runs' branches heard before the pull request existed, a commit pushed while Kickoff listens, and, after a
push to the base, anything but whether each pull request now conflicts. Real deliveries through the dispatcher and
the queue handlers into a real database; GitHub is the shared FakeGitHub, which records every call."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.queue.store import QueueKey
from bot.store.pulls import PullRequestStore
from bot.worker import RunLoops
from tests.deliveries import load
from tests.handlers.harness import DEFAULT_BRANCH, FULL_NAME, INSTALLATION_ID, OWNER, REPO, Harness, harness
from tests.prs.support import config, success
from tests.queue.support import sha
from tests.queue.webhooks import add_prs, check_run_payload
from tests.runs import support as runs_support
from tests.runs.support import FakeBackend, World

FIRST_SIGHT = frozenset({"get_pull_request", "list_labels", "list_reviews", "list_check_runs",
                         "list_commit_statuses", "list_pull_request_files"})


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with runs_support.world(database_url, tmp_path) as built:
        built.default_config = config()
        yield built


async def _open_one(w: World, *, seed: bool) -> int:
    """One run through the worker's loops to its pull request: with the queue's facts seeded (as `kickoff worker`
    wires it) or not; the pull request's number."""
    _trigger, (run,) = await w.add_trigger(["ok"])
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    loops = RunLoops(w.services, scheduler, on_opened=w.services.queue.seed_opened if seed else None)
    await loops.settle()
    (spec,) = backend.started
    await backend.end(run.id, success(run, branch=spec.branch))
    await loops.settle()
    row = await PullRequestStore(w.store).for_run(run.id)
    assert row is not None
    assert row.state == "open"
    return row.number


@pytest.mark.parametrize("seed", [True, False])
async def test_a_pull_request_kickoff_opened_needs_no_first_sight_read(w: World, seed: bool) -> None:
    number = await _open_one(w, seed=seed)
    before = len(w.github.calls)
    w.github.branch_shas[(runs_support.OWNER, runs_support.REPO, "main")] = sha("base")
    await w.services.queue.reconcile(
        QueueKey(runs_support.INSTALLATION, f"{runs_support.OWNER}/{runs_support.REPO}", "main"), focus={number})
    made = {verb for verb, _args in w.github.calls[before:]}
    assert "create_check_run" in made  # its first `review-queue` check
    if seed:
        # What `POST /pulls` answered, the labels Kickoff added, no reviews, the pushed head's checks from webhooks
        # and the run's files: nothing of it is read.
        assert made & FIRST_SIGHT == set()
    else:  # the control: without the seed the same reconcile reads the pull request's facts
        assert {"get_pull_request", "list_labels", "list_reviews", "list_check_runs"} <= made


@pytest.fixture
async def h(database_url: str) -> AsyncIterator[Harness]:
    async with harness(database_url) as world:
        world.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)] = sha("base")
        world.gh.permissions["rev"] = "write"
        yield world


def _branch_check(h: Harness, head: str, branch: str) -> dict[str, Any]:
    payload = check_run_payload(h, 1, "created", None, run_id=4242)
    payload["check_run"]["head_sha"] = head
    payload["check_run"]["check_suite"]["head_branch"] = branch
    return payload


async def test_checks_of_a_runs_branch_are_kept_before_its_pull_request_exists(h: Harness) -> None:
    await add_prs(h, 1)  # a queue to look in; neither commit below is any pull request's head
    ours, theirs = sha("pushed-by-a-run"), sha("someone-elses")
    await h.deliver("check_run", _branch_check(h, ours, "kickoff/7-fix-claude-12"))
    await h.deliver("check_run", _branch_check(h, theirs, "feature/login"))
    known = await h.services.queue.facts.commits(FULL_NAME, [ours, theirs])
    assert set(known) == {ours}
    assert known[ours].run_list() == [("ci", "in_progress", None, 15368)]
    assert known[ours].synced_at is None  # heard of, not trusted until its pull request is opened by Kickoff


def _push(h: Harness) -> dict[str, Any]:
    payload = copy.deepcopy(load("push.none.1.json"))
    payload["ref"] = f"refs/heads/{DEFAULT_BRANCH}"
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["repository"]["full_name"] = FULL_NAME
    payload["repository"]["default_branch"] = DEFAULT_BRANCH
    payload["commits"] = [{"id": sha("new-base"), "added": [], "removed": [], "modified": ["README.md"]}]
    return payload


async def test_a_push_to_the_base_reads_each_pull_request_and_nothing_else(h: Harness) -> None:
    await add_prs(h, 4)
    await h.services.queue.sweep()  # every entry read once: trusted from here on
    h.gh.branch_shas[(OWNER, REPO, DEFAULT_BRANCH)] = sha("new-base")
    before = len(h.gh.calls)
    await h.deliver("push", _push(h))
    reads = [verb for verb, _args in h.gh.calls[before:] if verb.startswith(("get_", "list_"))]
    # Whether each now conflicts with the moved base (`mergeable`) is the pull request's; its labels, reviews and
    # checks are not changed by a push to the base, and come from the stored facts.
    assert reads.count("get_pull_request") == 4
    assert not {"list_labels", "list_reviews", "list_check_runs", "list_commit_statuses"} & set(reads)
    assert h.services.queue.facts.drift.total == 0
