"""A fan-out's judge run, end to end at the scheduler: queued once its attempts are delivered, started even at
review capacity, given the issue and the attempts' branches with a read-only token, never opening a pull request;
its answer used when valid, the evidence ranking (with a note) when it answers garbage, fails or times out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.ranking import Ranking
from bot.runs.scheduler import Scheduler
from bot.runs.tracking import agent_text, detail_text
from bot.store.models import JUDGE_ATTEMPT, JUDGE_KIND, PullRequest, Run, RunState, Trigger
from tests.prs.support import deliverer
from tests.runs.support import FULL_NAME, FakeBackend, World, result_of, world
from tests.runs.test_ranking import fan_out, fanout_config


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        built.default_config = fanout_config(judge="a")
        yield built


async def judge_of(w: World, trigger_id: int) -> Run | None:
    return next((run for run in await w.runs.runs_of_trigger(trigger_id) if run.kind == JUDGE_KIND), None)


async def ranking_of(w: World, trigger_id: int) -> Ranking | None:
    stored = await w.runs.trigger(trigger_id)
    return Ranking.from_json(stored.ranking if stored else None)


async def started_judge(w: World, backend: FakeBackend) -> tuple[Scheduler, Trigger, dict[str, Run], Run]:
    """Three delivered attempts, the judge run queued by the tracker and started by the scheduler."""
    trigger, runs = await fan_out(w)
    scheduler = w.scheduler(backend)
    await scheduler.tracker.refresh()
    judge = await judge_of(w, trigger.id)
    assert judge is not None
    assert (judge.agent, judge.attempt, judge.state) == ("a", JUDGE_ATTEMPT, RunState.QUEUED)
    assert await ranking_of(w, trigger.id) is None  # not ranked yet: the judge is asked first
    assert judge.reason == "queued to rank the attempts (the task's judge)"
    w.open_prs[FULL_NAME] = 5  # the repository is at review capacity (limits.max_open_prs, 5 by default)
    assert await scheduler.step() == [judge.id]
    return scheduler, trigger, runs, judge


async def test_the_judge_run_is_queued_once_and_started_at_review_capacity(w: World) -> None:
    backend = FakeBackend()
    scheduler, trigger, runs, judge = await started_judge(w, backend)
    await scheduler.tracker.refresh()
    assert [run.id for run in await w.runs.runs_of_trigger(trigger.id) if run.kind == JUDGE_KIND] == [judge.id]
    spec = backend.started[0]
    assert spec.judge is not None
    assert [(a.run_id, a.branch) for a in spec.judge.attempts] == [
        (runs[agent].id, runs[agent].branch) for agent in ("a", "b", "c")]
    assert spec.judge.attempts[1].facts == (f"run {runs['b'].id}: b attempt 1; verify passed; CI none; "
                                            "+420/−80 lines in 2 files")
    assert spec.verify_command is None
    assert spec.output == "pr"
    assert spec.report_path is None
    assert "You are the judge of 3 attempts" in spec.prompt
    assert "# Crash on start\n\nIt crashes." in spec.prompt
    assert f"Name every run id exactly once: {runs['a'].id}, {runs['b'].id}, {runs['c'].id}." in spec.prompt
    # Its token can only read.
    assert w.github.calls_to("mint_run_token")[-1] == (w.github.calls_to("mint_run_token")[-1][0], "hello",
                                                       {"contents": "read"})
    # Another request's run in the same repository is held at review capacity meanwhile.
    _other, [held] = await w.add_trigger(["a"], issue=13)
    assert await scheduler.step() == []
    assert await w.state(held.id) == RunState.WAITING
    tracking = trigger.tracking_comment_id
    assert tracking is not None
    assert f"| a · judge (run {judge.id}) |" in w.github.comments[tracking].body


def answer(runs: dict[str, Run]) -> str:
    return json.dumps({"ranking": [
        {"run": runs["b"].id, "reason": "the only complete fix"},
        {"run": runs["a"].id, "reason": "close, but verify fails"},
        {"run": runs["c"].id, "reason": "misses the empty case"},
    ]})


async def test_a_judge_run_that_answers_a_valid_ranking_ranks_the_fan_out(w: World) -> None:
    backend = FakeBackend()
    scheduler, trigger, runs, judge = await started_judge(w, backend)
    await backend.end(judge.id, result_of(judge.id, report=answer(runs), summary="ranked"))
    assert await w.state(judge.id) == RunState.SUCCEEDED
    opened_before = len(w.github.calls_to("open_pull_request"))
    await deliverer(w).process()
    assert len(w.github.calls_to("open_pull_request")) == opened_before  # never a pull request for the judge
    done = await w.runs.require(judge.id)
    assert done.progress == "delivered"
    async with w.store.sessions() as session:
        assert await session.scalar(select(PullRequest).where(PullRequest.run_id == judge.id)) is None
    await scheduler.tracker.refresh()
    ranking = await ranking_of(w, trigger.id)
    assert ranking is not None
    assert (ranking.source, ranking.note) == ("judge", None)
    assert [(row.agent, row.rank, row.reason) for row in ranking.rows] == [
        ("b", 1, "the only complete fix"), ("a", 2, "close, but verify fails"), ("c", 3, "misses the empty case")]
    assert trigger.tracking_comment_id is not None
    body = w.github.comments[trigger.tracking_comment_id].body
    assert f"| a · judge (run {judge.id}) | ✅ succeeded | 0s | ranked the attempts |" in body
    assert "**Ranked for review** (by the judge)" in body


@pytest.mark.parametrize(("end", "note"), [
    ({"result": "garbage"}, "judge a failed: the answer is not JSON; ranked on evidence"),
    ({"result": "empty"}, "judge a failed: its run failed (the judge gave no answer); ranked on evidence"),
    ({"timed_out": True, "code": -9}, "judge a failed: its run timed out; ranked on evidence"),
    ({"code": 3},
     "judge a failed: its run failed (the runner exited with code 3 without a result); ranked on evidence"),
    ({"cancelled": True, "code": -15}, "judge a failed: its run was cancelled; ranked on evidence"),
])
async def test_a_judge_run_that_fails_leaves_the_evidence_ranking(w: World, end: dict[str, Any],
                                                                   note: str) -> None:
    backend = FakeBackend()
    scheduler, trigger, _runs, judge = await started_judge(w, backend)
    end = dict(end)
    kind = end.pop("result", None)
    if kind == "garbage":
        end["result"] = result_of(judge.id, report="I think b is the best one.")
    elif kind == "empty":
        end["result"] = result_of(judge.id, "failed", reason="the judge gave no answer")
    await backend.end(judge.id, **end)
    await deliverer(w).process()
    await scheduler.tracker.refresh()
    ranking = await ranking_of(w, trigger.id)
    assert ranking is not None
    assert (ranking.source, ranking.note) == ("evidence", note)
    assert [row.agent for row in ranking.rows] == ["c", "b", "a"]
    assert trigger.tracking_comment_id is not None
    assert f"_{note}_" in w.github.comments[trigger.tracking_comment_id].body
    assert await w.runs.add_attempt(await w.runs.require(judge.id), "retry") is None  # ranked once: no retry


async def test_a_judge_run_that_never_ends_is_stopped_and_the_evidence_ranking_stands(w: World) -> None:
    backend = FakeBackend()
    scheduler, trigger, _runs, judge = await started_judge(w, backend)
    await scheduler.tracker.refresh()
    assert await ranking_of(w, trigger.id) is None  # 0 minutes: the judge is still working
    async with w.store.sessions.begin() as session:  # queued 61 minutes ago: two run timeouts (30 minutes) passed
        await session.execute(update(Run).where(Run.id == judge.id)
                              .values(created_at=w.services.clock() - timedelta(minutes=61)))
    ranker = scheduler.tracker.ranker
    assert ranker is not None
    runs_now = await w.runs.runs_of_trigger(trigger.id)
    assert ranker.waiting(runs_now)  # the tracker looks again as time passes
    stored = await w.runs.trigger(trigger.id)
    assert stored is not None
    ranking = await ranker.settle(stored, runs_now)
    assert ranking is not None
    assert (ranking.source, ranking.note) == (
        "evidence", "judge a failed: its run did not end within 60 minutes; ranked on evidence")
    stopped = await w.runs.require(judge.id)
    assert (stopped.state, stopped.reason) == (
        RunState.CANCELLED, "stopped: the judge did not answer in time, so the attempts were ranked on evidence")
    await scheduler.step()
    await scheduler.aclose()  # lets the runner's stop finish
    assert backend.cancelled == [judge.id]  # its runner is stopped


async def test_the_judge_run_waits_for_a_free_runner_like_any_run(w: World) -> None:
    w.default_config = fanout_config(judge="a").model_copy(
        update={"limits": fanout_config().limits.model_copy(update={"max_parallel_runs": 1})})
    trigger, _runs = await fan_out(w)
    backend = FakeBackend()
    scheduler = w.scheduler(backend)
    _other, [busy] = await w.add_trigger(["b"], issue=13)
    assert await scheduler.step() == [busy.id]  # the repository's one slot is taken
    await scheduler.tracker.refresh()
    judge = await judge_of(w, trigger.id)
    assert judge is not None
    assert await scheduler.step() == []
    assert await w.state(judge.id) == RunState.QUEUED
    await backend.end(busy.id, result_of(busy.id, "failed", reason="no luck"))
    assert await scheduler.step() == [judge.id]


def test_a_judge_runs_row_says_it_is_the_judge() -> None:
    judge = Run(id=7, agent="claude", attempt=JUDGE_ATTEMPT, kind=JUDGE_KIND, state=RunState.SUCCEEDED)
    assert agent_text(judge, 1) == "claude · judge (run 7)"
    assert agent_text(judge, 3, with_run=False) == "claude · judge"  # `/agent status`
    assert detail_text(judge) == "ranked the attempts"
