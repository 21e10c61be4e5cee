"""Follow-ups, the CI-fix loop, siblings, pull request state and the agent-run buttons: FakeGitHub, a real database
(SQLite and PostgreSQL), the handlers called with webhook payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import messages
from bot.github import CheckRunInfo, ReviewComment
from bot.handlers import pull_requests as handlers
from bot.store.models import Run, RunState, Trigger
from bot.store.pulls import PullRequestStore
from tests.handlers.harness import OWNER as H_OWNER
from tests.handlers.harness import PULL, Harness, harness, issue_comment
from tests.handlers.harness import REPO as H_REPO
from tests.prs.support import (
    add_pull,
    check_run_payload,
    config,
    deliverer,
    event,
    pull_payload,
    succeed,
    success,
)
from tests.runs.support import FULL_NAME, OWNER, REPO, FakeBackend, World, settle, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, KICKOFF_MAX_PARALLEL_RUNS=20) as built:
        built.default_config = config()
        built.github.permissions["ann"] = "write"
        built.github.set_file(OWNER, REPO, ".github/kickoff.yml",
                              "agents: {ok: {adapter: command, command: [fake]}}\n"
                              "tasks: {fix: {agents: [ok]}}\nlimits: {max_fix_attempts: 2}\n")
        yield built


async def followup(w: World, number: int, *, branch: str | None = None) -> Run:
    _, (run,) = await w.add_trigger(["ok"], issue=number)
    async with w.store.sessions.begin() as session:
        await session.execute(update(Run).where(Run.id == run.id).values(kind="followup", pr_number=number,
                                                                         branch=branch))
    return await w.runs.require(run.id)


async def test_a_follow_up_on_a_kickoff_pull_request_pushes_to_its_branch_and_says_so(w: World) -> None:
    _, (opener,) = await w.add_trigger(["ok"])
    row = await add_pull(w, opener, 101)
    head = w.github.set_pull_request(OWNER, REPO, 101, head_ref=row.head_ref, base_ref="main").head_sha
    w.github.review_comments[(OWNER, REPO, 101)] = [
        ReviewComment(1, "Please handle None here.", "ann", "User", "app.py", 3, outdated=False),
        ReviewComment(2, "Old remark", "ann", "User", "app.py", 9, outdated=True),
    ]
    w.github.foreign_check_runs[(OWNER, REPO, head)] = [
        CheckRunInfo(9, "tests", head, "completed", "failure", 5, "2 failed", "test_load FAILED"),
        CheckRunInfo(10, "agent-run", head, "completed", "neutral", 1, "x", "ignored"),
    ]
    run = await followup(w, 101)
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    (spec,) = backend.started
    assert (spec.branch, spec.base_branch, spec.checkout) == (row.head_ref, "main", "branch")
    assert "Please handle None here." in spec.prompt
    assert "Old remark" not in spec.prompt
    assert "test_load FAILED" in spec.prompt
    assert "ignored" not in spec.prompt
    await backend.end(run.id, success(run, branch=row.head_ref))
    await settle(scheduler)
    assert w.github.calls_to("open_pull_request") == []
    (done,) = [c for c in w.github.comments_on(OWNER, REPO, 101) if "pushed its changes" in c.body]
    assert "Fixed the crash" in done.body
    stored = await PullRequestStore(w.store).by_number(FULL_NAME, 101)
    assert stored is not None
    assert stored.head_sha == f"{run.id:040x}"
    assert (await w.runs.require(run.id)).progress == "delivered"


async def test_a_follow_up_on_a_persons_pull_request_opens_one_into_its_branch(w: World) -> None:
    w.github.set_pull_request(OWNER, REPO, 5, head_ref="feature/x", base_ref="main", author="bob")
    run = await followup(w, 5)
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    (spec,) = backend.started
    assert (spec.branch, spec.base_branch, spec.checkout) == (f"kickoff/5-fix-ok-{run.id}", "feature/x", "base")
    await backend.end(run.id, success(run, branch=spec.branch))
    await settle(scheduler)
    ((_, _, _, head, base, _title, body, _draft),) = w.github.calls_to("open_pull_request")
    assert (head, base) == (spec.branch, "feature/x")
    assert "Follow-up to #5" in body
    assert "Closes" not in body
    stored = await w.runs.require(run.id)
    assert (stored.state, stored.pr_number, stored.reason) == (RunState.SUCCEEDED, 5, "opened #101 into `feature/x`")


async def test_a_fork_pull_request_is_refused_for_fix(database_url: str) -> None:
    h: Harness
    async with harness(database_url) as h:
        h.gh.set_pull_request(H_OWNER, H_REPO, PULL, head_repo="someone/fork")
        await h.deliver("issue_comment", issue_comment("/agent fix please", on_pull_request=True))
        assert await h.triggers() == []
        (reply,) = h.bot_comments(PULL)
        assert "comes from `someone/fork`" in reply.body
        assert "never runs an agent with write access" in reply.body


async def test_red_ci_plans_bounded_fix_runs_then_says_it_stopped(w: World) -> None:
    _, (opener,) = await w.add_trigger(["ok"])
    row = await add_pull(w, opener, 101)
    sha = row.head_sha or ""

    async def fail_ci(delivery: str, name: str = "tests", head: str = sha) -> None:
        payload = check_run_payload("completed", name=name, head_sha=head, numbers=[101], conclusion="failure")
        await handlers.check_run_failed(event("check_run", payload, delivery), w.services)

    async def fix_runs() -> list[Run]:
        async with w.store.sessions() as session:
            rows = await session.scalars(select(Run).join(Trigger).where(Trigger.source == "fix").order_by(Run.id))
            return list(rows)

    await fail_ci("d-own", name="agent-run")
    await fail_ci("d-queue", name="review-queue")
    await fail_ci("d-old", head="f" * 40)  # an older head
    assert await fix_runs() == []

    await fail_ci("d-1")
    await fail_ci("d-1")  # the same delivery again
    await fail_ci("d-2")  # while the first fix is queued: nothing more
    (first,) = await fix_runs()
    assert (first.kind, first.pr_number, first.issue_number, first.agent) == ("followup", 101, 101, "ok")
    trigger = await w.runs.trigger(first.trigger_id)
    assert trigger is not None
    assert "`tests` failed" in trigger.instructions
    assert (await w.runs.transitions(first.id))[0].reason == "fix attempt 1 of 2: the check `tests` failed"

    await w.runs.move(first.id, RunState.CANCELLED)
    await fail_ci("d-3")
    await fail_ci("d-3b", name="lint")
    assert len(await fix_runs()) == 2
    await w.runs.move((await fix_runs())[1].id, RunState.CANCELLED)
    await fail_ci("d-4")
    await fail_ci("d-5")
    assert len(await fix_runs()) == 2
    stopped = [c for c in w.github.comments_on(OWNER, REPO, 101) if "stopped fixing" in c.body]
    assert len(stopped) == 1
    assert "2 fix attempts" in stopped[0].body


async def test_a_conflict_with_the_base_plans_a_fix(w: World) -> None:
    _, (opener,) = await w.add_trigger(["ok"])
    row = await add_pull(w, opener, 101)
    payload = pull_payload("synchronize", row, mergeable=False, head_sha="d" * 40)
    await handlers.pull_request_changed(event("pull_request", payload, "d-sync"), w.services)
    stored = await PullRequestStore(w.store).by_number(FULL_NAME, 101)
    assert stored is not None
    assert stored.head_sha == "d" * 40
    assert stored.fix_attempts == 1
    async with w.store.sessions() as session:
        trigger = await session.scalar(select(Trigger).where(Trigger.source == "fix"))
    assert trigger is not None
    assert "conflicts with its base branch `main`" in trigger.instructions


async def test_a_merge_closes_the_siblings_and_deletes_their_branches(w: World) -> None:
    _, runs = await w.add_trigger(["a", "b", "c"])
    w.default_config = config(("a", "b", "c"))
    for run in runs:
        await succeed(w, run)
    await deliverer(w).process()
    pulls = PullRequestStore(w.store)
    rows = [await pulls.for_run(run.id) for run in runs]
    assert [r.number for r in rows if r] == [101, 102, 103]
    merged = rows[1]
    assert merged is not None
    await handlers.pull_request_closed(event("pull_request", pull_payload("closed", merged, merged=True)),
                                       w.services)
    states = {n: (await pulls.by_number(FULL_NAME, n)).state for n in (101, 102, 103)}  # type: ignore[union-attr]
    assert states == {101: "closed", 102: "merged", 103: "closed"}
    assert w.github.pulls[(OWNER, REPO, 101)].state == "closed"
    assert w.github.pulls[(OWNER, REPO, 102)].state == "open"  # GitHub merged it; the fake only records writes
    for number in (101, 103):
        (note,) = [c for c in w.github.comments_on(OWNER, REPO, number) if "Superseded" in c.body]
        assert note.body.startswith(messages.SUPERSEDED.format(number=102)[:20])
    deleted = {branch for _, _, branch in w.github.deleted_branches}
    assert deleted == {rows[0].head_ref, rows[2].head_ref}  # type: ignore[union-attr]
    assert await w.runs.open_kickoff_prs(FULL_NAME) == 0
    # GitHub then tells of each sibling's closing: Kickoff closed them and deleted their branches already, so it
    # asks GitHub for nothing more (issue 15: no second delete answered 422).
    calls = len(w.github.calls)
    for row in (rows[0], rows[2]):
        assert row is not None
        await handlers.pull_request_closed(event("pull_request", pull_payload("closed", row)), w.services)
    assert len(w.github.deleted_branches) == 2
    assert w.github.calls[calls:] == []


async def test_pull_request_state_follows_github(w: World) -> None:
    _, (a, b) = await w.add_trigger(["a", "b"])
    kept = await add_pull(w, a, 101)
    other = await add_pull(w, b, 102)
    pulls = PullRequestStore(w.store)
    await handlers.pull_request_closed(event("pull_request", pull_payload("closed", other)), w.services)
    assert (await pulls.by_number(FULL_NAME, 102)).state == "closed"  # type: ignore[union-attr]
    assert w.github.deleted_branches == [(OWNER, REPO, other.head_ref)]  # closed unmerged: its branch goes
    await handlers.pull_request_changed(event("pull_request", pull_payload("reopened", other)), w.services)
    assert (await pulls.by_number(FULL_NAME, 102)).state == "open"  # type: ignore[union-attr]
    await handlers.pull_request_changed(
        event("pull_request", pull_payload("synchronize", kept, head_sha="e" * 40)), w.services)
    assert (await pulls.by_number(FULL_NAME, 101)).head_sha == "e" * 40  # type: ignore[union-attr]
    # Both open again, siblings of one fan-out: they take one review slot (`limits.max_open_prs`).
    assert await w.runs.open_kickoff_prs(FULL_NAME) == 1


@pytest.mark.parametrize(("login", "allowed"), [("ann", True), ("mallory", False)])
async def test_the_retry_button_goes_through_the_gate(w: World, login: str, allowed: bool) -> None:
    _, (opener,) = await w.add_trigger(["ok"])
    row = await add_pull(w, opener, 101)
    failed = await followup(w, 101, branch=row.head_ref)
    await w.runs.transition(failed.id, RunState.STARTING)
    await w.runs.move(failed.id, RunState.FAILED, "the agent gave up")
    payload = check_run_payload("requested_action", name="agent-run", head_sha=row.head_sha or "", numbers=[101],
                                external_id=f"kickoff-run:{opener.id}", identifier="retry", sender=login)
    await handlers.agent_check_button(event("check_run", payload, f"d-{login}"), w.services)
    attempts = [r for r in await w.runs.runs_on_issue(FULL_NAME, 101) if r.agent == "ok" and r.kind == "followup"]
    reply = w.github.comments_on(OWNER, REPO, 101)[-1]
    if allowed:
        assert [r.attempt for r in attempts] == [1, 2]
        assert reply.body.startswith(f"Retrying run {failed.id}")
    else:
        assert [r.attempt for r in attempts] == [1]
        assert "Sorry @mallory, the **Retry** button of the `agent-run` check needs at least `write`" in reply.body


async def test_the_cancel_button_cancels_the_runs_working_on_the_pull_request(w: World) -> None:
    _, (opener,) = await w.add_trigger(["ok"])
    row = await add_pull(w, opener, 101)
    active = await followup(w, 101, branch=row.head_ref)
    payload = check_run_payload("requested_action", name="agent-run", head_sha=row.head_sha or "", numbers=[101],
                                external_id=f"kickoff-run:{opener.id}", identifier="cancel")
    await handlers.agent_check_button(event("check_run", payload), w.services)
    cancelled = await w.runs.require(active.id)
    assert (cancelled.state, cancelled.reason) == (RunState.CANCELLED, "cancelled by @ann")
    # Another App's check, or another button, is not ours to answer.
    other = check_run_payload("requested_action", name="review-queue", head_sha="x", numbers=[101],
                              identifier="cancel")
    before = len(w.github.calls)
    await handlers.agent_check_button(event("check_run", other, "d-other"), w.services)
    assert len(w.github.calls) == before
