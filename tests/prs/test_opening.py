"""Opening one pull request per succeeded run: texts, labels, reviewer, the agent-run check, research reports,
idempotency and refusals. FakeGitHub, a real database (SQLite and PostgreSQL), the real scheduler where it matters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.github import ValidationFailed
from bot.logs import register_secret
from bot.runspec import ENV_RUN_SECRET
from bot.store.models import RunState
from bot.store.pulls import PullRequestStore
from tests.prs.support import LEAKED_KEY, config, deliverer, succeed, success, texts_written
from tests.runs.support import ISSUE, OWNER, REPO, FakeBackend, World, dead_worker, live_worker, settle, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, KICKOFF_MAX_PARALLEL_RUNS=20) as built:
        built.default_config = config()
        yield built


async def test_a_succeeded_run_opens_its_pull_request_with_everything(w: World) -> None:
    register_secret(LEAKED_KEY)  # the runner's env names it; Kickoff registers what it knows to be secret
    trigger, (run,) = await w.add_trigger(["ok"])
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    (spec,) = backend.started
    await backend.end(run.id, success(run, branch=spec.branch, summary="Fixed it. Token was ghs_abcdefghijklmnop123"))
    await settle(scheduler)

    stored = await w.runs.require(run.id)
    assert (stored.state, stored.pr_number, stored.progress) == (RunState.SUCCEEDED, 101, "delivered")
    ((_, owner, repo, head, base, title, body, draft),) = w.github.calls_to("open_pull_request")
    assert (owner, repo, head, base, draft) == (OWNER, REPO, spec.branch, "main", False)
    assert title == f"fix: Crash on start (#{ISSUE}) [ok]"
    assert f"Closes #{ISSUE}" in body
    assert "| model | `house-1` |" in body
    assert "1,200 in · 340 out" in body
    assert "$0.42" in body
    assert "<details><summary>Summary, run facts and transcript</summary>" in body
    assert "**Transcript** (the agent's last output, secrets redacted)" in body
    assert "editing app.py" in body
    assert messages.PR_MARKER.format(run=run.id) in body
    assert w.github.labels[(OWNER, REPO, 101)] == ["kickoff", "agent:ok"]
    assert w.github.reviewers[(OWNER, REPO, 101)] == ["ann"]
    (check,) = w.github.check_runs.values()
    assert (check["name"], check["head_sha"], check["conclusion"]) == ("agent-run", f"{run.id:040x}", "success")
    assert check["external_id"] == f"kickoff-run:{run.id}"
    assert "Fixed it." in check["summary"]
    assert "`app.py`" in check["summary"]
    assert 1 <= len(check["actions"]) <= 3
    for action in check["actions"]:
        assert len(action.label) <= 20
        assert len(action.description) <= 40
        assert len(action.identifier) <= 20
    assert {a.identifier for a in check["actions"]} == {"retry", "cancel"}
    row = await PullRequestStore(w.store).for_run(run.id)
    assert row is not None
    assert (row.number, row.state, row.head_sha, row.agent_check_run_id) == (101, "open", f"{run.id:040x}",
                                                                          next(iter(w.github.check_runs)))
    # The tracking comment names the pull request.
    assert trigger.tracking_comment_id is not None
    assert "| #101 |" in w.github.comments[trigger.tracking_comment_id].body
    # Nothing secret anywhere Kickoff wrote.
    written = texts_written(w.github)
    for secret in (LEAKED_KEY, "ghs_abcdefghijklmnop123", *[t.token for t in w.github.run_tokens],
                   backend.secrets[run.id][ENV_RUN_SECRET]):
        assert secret not in written


async def test_failed_verify_opens_a_draft_with_a_neutral_check_and_config_can_ask_for_drafts(w: World) -> None:
    _, (red, green) = await w.add_trigger(["ok", "ok2"])
    w.default_config = config(("ok", "ok2"), pull_requests={"labels": ["bots"], "request_review": False})
    await succeed(w, red, success(red, verify={"command": "pytest -q", "exit_code": 1, "passed": False}))
    await succeed(w, green, success(green, verify={"command": "pytest -q", "exit_code": 0, "passed": True}))
    assert await deliverer(w).process() == 2
    drafts = {call[3]: call[7] for call in w.github.calls_to("open_pull_request")}
    assert drafts == {success(red).branch: True, success(green).branch: False}
    conclusions = sorted(c["conclusion"] for c in w.github.check_runs.values())
    assert conclusions == ["neutral", "success"]
    bodies = [call[6] for call in w.github.calls_to("open_pull_request")]
    assert any("❌ `pytest -q` failed (exit 1)" in body for body in bodies)
    assert w.github.labels[(OWNER, REPO, 101)] == ["bots", "agent:ok"]
    assert w.github.calls_to("request_reviewers") == []

    w.default_config = config(pull_requests={"draft": True})
    _, (third,) = await w.add_trigger(["ok"])
    await succeed(w, third)
    await deliverer(w).process()
    assert w.github.calls_to("open_pull_request")[-1][7] is True


async def test_no_review_is_requested_from_a_bot(w: World) -> None:
    _, (run,) = await w.add_trigger(["ok"])
    async with w.store.sessions.begin() as session:
        from sqlalchemy import update

        from bot.store.models import Trigger

        await session.execute(update(Trigger).values(sender="renovate[bot]"))
    await succeed(w, run)
    await deliverer(w).process()
    assert w.github.calls_to("request_reviewers") == []


async def test_a_research_run_refs_the_issue_and_comments_its_report(w: World) -> None:
    w.default_config = config(tasks={"fix": {"agents": ["ok"], "output": "report"}})
    _, (run,) = await w.add_trigger(["ok"])
    report = "# Findings\n\nThe crash comes from `load()`.\n" + "detail " * 2000
    await succeed(w, run, success(run, files_changed=[f"research/{ISSUE}-crash-on-start.md"], report=report))
    await deliverer(w).process()
    ((*_, body, _draft),) = w.github.calls_to("open_pull_request")
    assert f"Refs #{ISSUE}" in body
    assert "Closes" not in body
    assert f"`research/{ISSUE}-crash-on-start.md`" in body
    (comment,) = [c for c in w.github.comments_on(OWNER, REPO, ISSUE) if "Research by" in c.body]
    assert "The crash comes from" in comment.body
    assert "#101" in comment.body
    assert len(comment.body) < 4000  # bounded


async def test_a_repeated_delivery_or_two_workers_open_one_pull_request(w: World) -> None:
    _, (run,) = await w.add_trigger(["ok"])
    await succeed(w, run)
    # A duplicated report changes nothing (the run is final) and two workers race for the delivery.
    assert not await w.runs.finish(run.id, success(run))
    done = await asyncio.gather(deliverer(w).process(), deliverer(w).process())
    assert sum(done) == 1
    assert await deliverer(w).process() == 0
    assert len(w.github.calls_to("open_pull_request")) == 1


async def test_a_pull_request_an_interrupted_worker_opened_is_adopted(w: World) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from bot.store.models import PullRequest, Run

    _, (run,) = await w.add_trigger(["ok"])
    result = await succeed(w, run)
    # A worker reserved the row, opened the pull request on GitHub, and died before recording it.
    stale = (await w.runs.require(run.id)).updated_at - timedelta(minutes=10)
    pulls = PullRequestStore(w.store)
    _row, mine, _fresh = await pulls.reserve(await w.runs.require(run.id), head_ref=result.branch or "",
                                             base_ref="main")
    assert mine
    assert result.branch is not None
    await w.github.open_pull_request(7, OWNER, REPO, head=result.branch, base="main", title="t", body="b")
    async with w.store.sessions.begin() as session:
        await session.execute(update(PullRequest).values(updated_at=stale))
        await session.execute(update(Run).where(Run.id == run.id).values(progress="delivering", updated_at=stale))
    assert await deliverer(w).process() == 1
    assert (await w.runs.require(run.id)).pr_number == 101
    assert len(w.github.pulls) == 1
    stored = await pulls.for_run(run.id)
    assert stored is not None
    assert (stored.number, stored.state) == (101, "open")


async def test_github_refusing_the_pull_request_fails_the_run_with_its_reason(w: World) -> None:
    trigger, (run,) = await w.add_trigger(["ok"])
    w.github.fail("open_pull_request", ValidationFailed(
        "Validation Failed", status=422, method="POST", path="/repos/octo/hello/pulls",
        errors=[{"resource": "PullRequest", "code": "custom", "message": "No commits between main and kickoff/x"}],
    ))
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    await backend.end(run.id, success(run))
    await settle(scheduler)
    failed = await w.runs.require(run.id)
    assert failed.state == RunState.FAILED
    assert failed.reason is not None
    assert "No commits between main and kickoff/x" in failed.reason
    assert failed.reason.startswith("GitHub refused to open the pull request: 422 Validation Failed")
    assert await PullRequestStore(w.store).for_run(run.id) is None
    transitions = [(t.from_state, t.to_state) for t in await w.runs.transitions(run.id)]
    assert transitions[-1] == (RunState.SUCCEEDED, RunState.FAILED)
    assert trigger.tracking_comment_id is not None
    assert "No commits between main and kickoff/x" in w.github.comments[trigger.tracking_comment_id].body


async def test_a_transient_failure_is_tried_again(w: World) -> None:
    from bot.github import GitHubUnavailable

    _, (run,) = await w.add_trigger(["ok"])
    await succeed(w, run)
    w.github.fail("open_pull_request", GitHubUnavailable("down", status=502))
    assert await deliverer(w).process() == 0
    assert (await w.runs.require(run.id)).state == RunState.SUCCEEDED
    assert await deliverer(w).process() == 1
    assert (await w.runs.require(run.id)).pr_number == 101


async def test_a_fan_out_of_ten_edits_the_tracking_comment_a_few_times_and_links_siblings(w: World) -> None:
    names = tuple(f"a{i}" for i in range(10))
    w.default_config = config(names, limits={"max_parallel_runs": 10, "max_open_prs": 50})
    trigger, runs = await w.add_trigger(list(names))
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    assert len(backend.started) == 10
    by_id = {run.id: run for run in runs}
    for spec in backend.started:  # the start order is not the runs' order: each result names its own run's branch
        await backend.end(spec.run_id, success(by_id[spec.run_id], branch=spec.branch))
    await settle(scheduler)
    await settle(scheduler)
    assert trigger.tracking_comment_id is not None
    edits = [c for c in w.github.calls_to("edit_comment") if c[3] == trigger.tracking_comment_id]
    assert 1 <= len(edits) <= 4
    body = w.github.comments[trigger.tracking_comment_id].body
    assert all(f"| #{n} |" in body for n in range(101, 111))
    # Siblings: each pull request lists the other nine and says where it ranks, written once each when the fan-out
    # was ranked (the newest was opened with the list, but not yet ranked).
    assert len(w.github.calls_to("update_pull_request")) == 10
    assert all("ranked" in w.github.pull_bodies[(OWNER, REPO, n)] for n in range(101, 111))
    for number in range(101, 111):
        text = w.github.pull_bodies[(OWNER, REPO, number)]
        others = [n for n in range(101, 111) if n != number]
        assert ", ".join(f"#{n}" for n in others) in text


async def test_a_dead_workers_pull_request_is_taken_over_at_once_and_adopted_without_a_second_post(w: World) -> None:
    """A worker reserved the row, `POST /pulls` succeeded, and it was killed before recording it, a moment ago.
    Its claims name it: another worker takes them over at once (not after 5 minutes), finds the head's open pull
    request and adopts it, without asking GitHub for a second one."""
    from sqlalchemy import update

    from bot.store.models import Run

    _, (run,) = await w.add_trigger(["ok"])
    result = await succeed(w, run)
    assert result.branch is not None
    killed = await dead_worker(w)
    pulls = PullRequestStore(w.store)
    _row, mine, _fresh = await pulls.reserve(await w.runs.require(run.id), head_ref=result.branch, base_ref="main",
                                     worker_id=killed)
    assert mine
    await w.github.open_pull_request(7, OWNER, REPO, head=result.branch, base="main", title="t", body="b")
    async with w.store.sessions.begin() as session:
        await session.execute(update(Run).where(Run.id == run.id).values(progress="delivering", worker_id=killed))
    w.services.worker_id = await live_worker(w, host="me.invalid")

    assert await deliverer(w).process() == 1
    assert len(w.github.calls_to("open_pull_request")) == 1  # the dead worker's; none since
    assert len(w.github.pulls) == 1
    stored = await pulls.for_run(run.id)
    assert stored is not None
    assert (stored.number, stored.state, stored.worker_id) == (101, "open", w.services.worker_id)
    assert (await w.runs.require(run.id)).pr_number == 101


async def test_a_live_workers_pull_request_claim_is_left_to_it(w: World) -> None:
    from sqlalchemy import update

    from bot.store.models import Run

    _, (run,) = await w.add_trigger(["ok"])
    await succeed(w, run)
    busy = await live_worker(w)
    async with w.store.sessions.begin() as session:
        await session.execute(update(Run).where(Run.id == run.id).values(progress="delivering", worker_id=busy))
    assert await deliverer(w).process() == 0
    assert w.github.calls_to("open_pull_request") == []
    assert (await w.runs.require(run.id)).progress == "delivering"


async def test_an_incomplete_run_opens_a_draft_whose_body_starts_with_the_marker_and_a_cleaned_reason(
    w: World,
) -> None:
    """The reason can quote the agent (the idle watchdog names its last line): cleaned and redacted like any agent
    text, on one line, inside the marker."""
    register_secret(LEAKED_KEY)
    _, (run,) = await w.add_trigger(["ok"])
    reason = (f"the agent printed nothing … its last words were about signing in (Login: {LEAKED_KEY} "
              "<!-- @everyone merge me -->\nnow): it is likely waiting for a login")
    await succeed(w, run, success(run, incomplete=True, reason=reason, verify=None))
    assert await deliverer(w).process() == 1
    ((*_, body, draft),) = w.github.calls_to("open_pull_request")
    assert draft is True
    first = body.split("\n\n")[0]
    assert first == ("> [!WARNING]\n> **Incomplete:** the agent printed nothing … its last words were about signing "
                     "in (Login: [redacted] now): it is likely waiting for a login. This draft holds what the agent "
                     "had changed by then, checked like any run's (protected paths, the change limit) but not "
                     "verified (`verify.command` did not run). Finish it here (by hand, or with a follow-up: "
                     "`/agent <task> …` on this pull request), or close it.")
    assert messages.PR_VERIFY_SKIPPED in body
    assert LEAKED_KEY not in body
    assert "@everyone" not in body
    (check,) = w.github.check_runs.values()
    assert check["conclusion"] == "neutral"
