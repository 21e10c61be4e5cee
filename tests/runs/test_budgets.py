"""Budgets (issue 16): `limits.daily_cost_usd` holds a repository's new runs back once the runs it finished since
00:00 UTC cost that much, saying so (and when it resets) in the tracking comment, and lets them start the next UTC
day; `limits.max_cost_usd` and `pull_requests.publish_incomplete` reach the spec; a run cut short opens a draft
marked incomplete. Real databases, `FakeGitHub`, a recording fake backend, the clock passed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot import messages
from bot.config import RepoConfig
from bot.runs.claims import utc_midnight
from bot.store.models import Run, RunState, Trigger
from tests.dashboard.test_query_plans import explained, full_scans
from tests.runs.support import FULL_NAME, INSTALLATION, ISSUE, FakeBackend, World, result_of, settle, world

NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)


class Clock:
    """The time the scheduler sees; a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, KICKOFF_MAX_PARALLEL_RUNS=5) as built:
        yield built


def config(**settings: object) -> RepoConfig:
    limits = {key: value for key, value in settings.items() if key in ("daily_cost_usd", "max_cost_usd")}
    pulls = {key: value for key, value in settings.items() if key == "publish_incomplete"}
    return RepoConfig.model_validate({
        "agents": {name: {"adapter": "command", "command": ["fake"]} for name in ("ok", "two")},
        "tasks": {"fix": {"agents": ["ok", "two"]}},
        "limits": limits, "pull_requests": pulls,
    })


async def finished_run(w: World, *, cost: float | None, at: datetime, repository: str = FULL_NAME) -> None:
    """A run of an earlier trigger that finished at `at`, having cost `cost`."""
    async with w.store.sessions.begin() as session:
        trigger = Trigger(delivery_id=f"past-{at.isoformat()}-{repository}-{cost}", seq=0,
                          installation_id=INSTALLATION, repository=repository, issue_number=ISSUE, source="label",
                          task="fix", sender="ann", instructions="", created_at=at - timedelta(minutes=20))
        session.add(trigger)
        await session.flush()
        session.add(Run(trigger_id=trigger.id, installation_id=INSTALLATION, repository=repository,
                        issue_number=ISSUE, task="fix", agent="ok", attempt=1, kind="new", state=RunState.SUCCEEDED,
                        cost_usd=cost, created_at=at - timedelta(minutes=20), updated_at=at,
                        started_at=at - timedelta(minutes=19), finished_at=at))


async def test_a_repository_past_its_daily_budget_holds_new_runs_saying_when_it_resets(w: World) -> None:
    clock = Clock(NOW)
    w.services.clock = clock
    w.default_config = config(daily_cost_usd=10)
    midnight = datetime(2026, 12, 4, tzinfo=UTC)
    await finished_run(w, cost=6.25, at=midnight)  # the first instant of the day counts
    await finished_run(w, cost=4.25, at=NOW - timedelta(minutes=5))
    await finished_run(w, cost=None, at=NOW - timedelta(minutes=4))  # an agent that reports no cost counts nothing
    await finished_run(w, cost=50.0, at=midnight - timedelta(microseconds=1))  # yesterday's
    await finished_run(w, cost=80.0, at=NOW, repository="octo/other")  # another repository's
    assert await w.runs.cost_since(FULL_NAME, midnight) == 10.5
    trigger, runs = await w.add_trigger(["ok", "two"], created_at=NOW)
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    assert await settle(scheduler) == []
    reason = messages.RUN_WAITING_FOR_BUDGET.format(spent="$10.50", limit="$10.00", resets="2026-12-05")
    assert reason == ("waiting for the daily budget: this repository's runs cost $10.50 today, $10.00 allowed "
                      "(`limits.daily_cost_usd`); starts after the budget resets at 00:00 UTC (2026-12-05)")
    for run in runs:
        held = await w.runs.require(run.id)
        assert (held.state, held.reason) == (RunState.WAITING, reason)
    assert trigger.tracking_comment_id is not None
    assert reason in w.github.comments[trigger.tracking_comment_id].body
    assert backend.started == []
    # Another repository is not held by this one's spending.
    _, (elsewhere,) = await w.add_trigger(["ok"], repository="octo/third", created_at=NOW)
    assert await settle(scheduler) == [elsewhere.id]
    # Still the same day: still held, and the comment is not edited again.
    clock.now = datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC)
    edits = len(w.github.calls_to("edit_comment"))
    assert await settle(scheduler) == []
    assert len(w.github.calls_to("edit_comment")) == edits
    # The next UTC day, the budget is back: the held runs start.
    clock.now = datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC)
    assert sorted(await settle(scheduler)) == sorted(run.id for run in runs)
    assert [t.to_state for t in await w.runs.transitions(runs[0].id)] == [
        RunState.QUEUED, RunState.WAITING, RunState.STARTING]
    assert "daily budget" not in w.github.comments[trigger.tracking_comment_id].body


async def test_under_the_daily_budget_runs_start_and_no_budget_means_no_hold(w: World) -> None:
    w.services.clock = Clock(NOW)
    w.default_config = config(daily_cost_usd=10)
    await finished_run(w, cost=9.99, at=NOW - timedelta(hours=1))
    _, runs = await w.add_trigger(["ok", "two"], created_at=NOW)
    scheduler = w.scheduler(FakeBackend())
    assert sorted(await settle(scheduler)) == sorted(run.id for run in runs)
    w.default_config = config()
    await finished_run(w, cost=500.0, at=NOW - timedelta(minutes=30))
    _, more = await w.add_trigger(["ok"], issue=13, created_at=NOW)
    assert await settle(scheduler) == [more[0].id]


def test_the_budget_day_is_the_utc_day() -> None:
    assert utc_midnight(datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 12, 4, tzinfo=UTC)
    # 01:30 on the 4th in UTC+2 is still the 3rd in UTC.
    assert utc_midnight(datetime(2026, 12, 4, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == datetime(
        2026, 12, 3, tzinfo=UTC)


async def test_the_daily_cost_is_one_index_range(w: World) -> None:
    for hours in range(30):
        await finished_run(w, cost=1.0, at=NOW - timedelta(hours=hours))
    with explained(w.store) as plans:
        assert await w.runs.cost_since(FULL_NAME, utc_midnight(NOW)) == 16.0
    ((statement, plan),) = plans
    postgres = w.store.dialect == "postgresql"
    assert not full_scans(plan, postgres), statement
    if not postgres:
        assert plan == ["SEARCH runs USING INDEX ix_runs_repository_finished (repository=? AND finished_at>?)"]


async def test_the_cost_budget_and_publish_incomplete_reach_the_spec(w: World) -> None:
    w.default_config = config(max_cost_usd=2.5)
    backend = FakeBackend()
    _, (run, _) = await w.add_trigger(["ok", "two"])
    await w.scheduler(backend).step()
    spec = next(s for s in backend.started if s.run_id == run.id)
    assert (spec.max_cost_usd, spec.publish_incomplete) == (2.5, True)
    w.default_config = config(publish_incomplete=False)
    _, (later,) = await w.add_trigger(["ok"], issue=13)
    await w.scheduler(backend).step()
    spec = next(s for s in backend.started if s.run_id == later.id)
    assert (spec.max_cost_usd, spec.publish_incomplete) == (None, False)


async def test_a_run_cut_short_opens_a_draft_marked_incomplete_with_the_reason(w: World) -> None:
    w.default_config = config()
    trigger, (run, other) = await w.add_trigger(["ok", "two"])
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    await settle(scheduler)
    reason = "the agent did not finish within 1800 s and was stopped"
    stored = await w.runs.require(run.id)
    await backend.end(run.id, result_of(run.id, "succeeded", reason=reason, incomplete=True, pushed=True,
                                        branch=stored.branch, head_sha="a" * 40, files_changed=["src/app.py"],
                                        summary="Half of it."))
    await backend.end(other.id, result_of(other.id, "no_changes"))
    await settle(scheduler)
    ((_, owner, repo, head, _base, _title, body, draft),) = w.github.calls_to("open_pull_request")
    assert (owner, repo, head, draft) == ("octo", "hello", stored.branch, True)
    assert body.startswith(messages.PR_INCOMPLETE.format(reason=reason))
    assert body.startswith("> [!WARNING]\n> **Incomplete:** the agent did not finish within 1800 s and was stopped. ")
    assert messages.PR_VERIFY_SKIPPED in body
    done = await w.runs.require(run.id)
    assert (done.state, done.reason, done.progress) == (RunState.SUCCEEDED, reason, "delivered")
    ((*_, name, _sha, conclusion, title, summary, _actions, _external),) = w.github.calls_to("create_check_run")
    assert (name, conclusion, title) == ("agent-run", "neutral", "ok: incomplete in 0s")
    assert summary.startswith(messages.PR_INCOMPLETE.format(reason=reason))
    assert trigger.tracking_comment_id is not None
    tracking = w.github.comments[trigger.tracking_comment_id].body
    assert f"#{done.pr_number} (draft, incomplete: {reason})" in tracking
