"""Guarded state changes on SQLite and PostgreSQL: every move recorded, no run moved twice, limits held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from bot.runspec import RunResult
from bot.store.db import Store
from bot.store.lifecycle import InvalidTransition
from bot.store.models import PullRequest, Run, RunState, utcnow
from bot.store.runs import MAX_TRANSCRIPT_CHARS, RunNotFound, RunStore
from tests.runs.support import World, result_of, world


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        yield built


async def test_a_transition_is_recorded_with_time_and_reason(w: World) -> None:
    _, (run,) = await w.add_trigger()
    before = utcnow()
    assert await w.runs.transition(run.id, RunState.WAITING, "review capacity")
    moved = await w.runs.require(run.id)
    assert (moved.state, moved.reason) == (RunState.WAITING, "review capacity")
    assert moved.updated_at >= before
    history = await w.runs.transitions(run.id)
    assert [(t.from_state, t.to_state, t.reason) for t in history] == [
        (None, RunState.QUEUED, None), (RunState.QUEUED, RunState.WAITING, "review capacity")
    ]
    assert history[-1].at >= before


async def test_forbidden_and_stale_transitions(w: World) -> None:
    _, (run,) = await w.add_trigger()
    with pytest.raises(InvalidTransition):
        await w.runs.transition(run.id, RunState.SUCCEEDED)
    with pytest.raises(RunNotFound):
        await w.runs.transition(999_999, RunState.CANCELLED)
    # Guarded by the state it expects: a run no longer `waiting` is not moved, and nothing is recorded.
    assert not await w.runs.transition(run.id, RunState.STARTING, from_state=RunState.WAITING)
    assert await w.state(run.id) == RunState.QUEUED
    assert len(await w.runs.transitions(run.id)) == 1
    assert await w.runs.transition(run.id, RunState.CANCELLED)
    with pytest.raises(InvalidTransition):
        await w.runs.transition(run.id, RunState.QUEUED)
    assert not await w.runs.move(run.id, RunState.FAILED, "too late")  # final stays final


async def test_two_workers_never_both_move_a_run(w: World, database_url: str) -> None:
    _, runs = await w.add_trigger([f"a{i}" for i in range(8)])
    other = Store(database_url)
    try:
        mine, theirs = w.runs, RunStore(other)
        for run in runs:
            await mine.transition(run.id, RunState.STARTING)
        outcomes = await asyncio.gather(*(
            store.transition(run.id, to, from_state=RunState.STARTING)
            for run in runs
            for store, to in ((mine, RunState.RUNNING), (theirs, RunState.CANCELLED))
        ))
        for index, run in enumerate(runs):
            assert sorted(outcomes[2 * index: 2 * index + 2]) == [False, True]
            history = await mine.transitions(run.id)
            assert [t.from_state for t in history].count(RunState.STARTING) == 1
    finally:
        await other.close()


async def test_concurrent_claims_hold_the_global_and_repo_limits(w: World, database_url: str) -> None:
    _, runs = await w.add_trigger([f"a{i}" for i in range(12)])
    stores = [Store(database_url) for _ in range(4)]
    try:
        async def claimer(store: Store) -> list[int]:
            claims = RunStore(store)
            return [run.id for run in runs if await claims.claim(run, global_limit=5, repo_limit=50)]

        claimed = [run_id for batch in await asyncio.gather(*(claimer(s) for s in stores)) for run_id in batch]
        assert len(claimed) == len(set(claimed)) == 5
        on_runner = await w.runs.on_runner()
        assert (on_runner.total, dict(on_runner.by_repo)) == (5, {"octo/hello": 5})
        # The per-repository limit, and runners still alive for ended runs, count too.
        rest = [run for run in runs if run.id not in claimed]
        assert not await w.runs.claim(rest[0], global_limit=50, repo_limit=5)
        assert not await w.runs.claim(rest[0], global_limit=6, repo_limit=50, busy_global=1)
        assert await w.runs.claim(rest[0], global_limit=7, repo_limit=7, busy_global=1, busy_repo=1)
    finally:
        for store in stores:
            await store.close()


async def test_a_run_is_unique_per_trigger_agent_and_attempt(w: World) -> None:
    trigger, (run,) = await w.add_trigger(["claude"])
    now = utcnow()
    with pytest.raises(IntegrityError):
        async with w.store.sessions.begin() as session:
            session.add(Run(trigger_id=trigger.id, installation_id=1, repository="octo/hello", issue_number=12,
                            task="fix", agent="claude", attempt=1, kind="new", state="queued", created_at=now,
                            updated_at=now))
    await w.runs.transition(run.id, RunState.STARTING)
    await w.runs.move(run.id, RunState.FAILED, "boom")
    failed = await w.runs.require(run.id)
    second = await w.runs.add_attempt(failed, "retry")
    assert second is not None
    assert (second.attempt, second.state, second.trigger_id) == (2, RunState.QUEUED, trigger.id)
    assert await w.runs.add_attempt(failed, "retry again") is None  # a later attempt exists already


async def test_finish_records_the_result_and_passes_through_running(w: World) -> None:
    _, (run,) = await w.add_trigger()
    await w.runs.transition(run.id, RunState.STARTING)
    result = result_of(run.id, "no_changes", usage={"cost_usd": 1.25, "input_tokens": 10, "output_tokens": 20})
    assert await w.runs.finish(run.id, result)
    assert not await w.runs.finish(run.id, result)  # idempotent
    done = await w.runs.require(run.id)
    assert (done.state, done.cost_usd, done.input_tokens, done.output_tokens) == (RunState.NO_CHANGES, 1.25, 10, 20)
    assert done.result is not None
    assert '"no_changes"' in done.result
    assert done.finished_at is not None
    assert done.started_at is not None
    assert [t.to_state for t in await w.runs.transitions(run.id)] == [
        RunState.QUEUED, RunState.STARTING, RunState.RUNNING, RunState.NO_CHANGES
    ]


async def test_a_stored_result_keeps_only_the_end_of_a_long_transcript(w: World) -> None:
    _, (run,) = await w.add_trigger()
    await w.runs.transition(run.id, RunState.STARTING)
    tail = "early " * 20_000 + "THE END"  # 120 KB, from a runner that does not bound it
    assert await w.runs.finish(run.id, result_of(run.id, "failed", transcript_tail=tail))
    stored = RunResult.model_validate_json((await w.runs.require(run.id)).result or "")
    assert len(stored.transcript_tail) == MAX_TRANSCRIPT_CHARS
    assert stored.transcript_tail.endswith("early THE END")


async def test_waiting_reasons_are_written_only_when_they_change(w: World) -> None:
    _, (run,) = await w.add_trigger()
    await w.runs.transition(run.id, RunState.WAITING, "one")
    assert not await w.runs.explain_wait(run.id, "one")
    assert await w.runs.explain_wait(run.id, "two")
    assert (await w.runs.require(run.id)).reason == "two"


async def test_open_kickoff_prs_counts_open_pull_requests_that_runs_opened(w: World) -> None:
    _, runs = await w.add_trigger(["a", "b", "c", "d"])
    assert await w.runs.open_kickoff_prs("octo/hello") == 0
    now = utcnow()
    async with w.store.sessions.begin() as session:
        for run, number, state in zip(runs, (101, 102, 103, -4), ("open", "open", "merged", "opening"), strict=True):
            session.add(PullRequest(installation_id=7, repository="octo/hello", number=number, run_id=run.id,
                                    head_ref=f"b{number}", base_ref="main", state=state, created_at=now,
                                    updated_at=now))
        session.add(PullRequest(installation_id=7, repository="octo/hello", number=200, run_id=None,
                                head_ref="human", base_ref="main", state="open", created_at=now, updated_at=now))
    assert await w.runs.open_kickoff_prs("octo/hello") == 3  # two open, one being opened; not merged, not human
    assert await w.runs.open_kickoff_prs("octo/other") == 0
