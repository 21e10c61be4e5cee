"""Scheduler + local backend + real runner processes (the fake runner) + the report endpoint on a real server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from bot import messages
from bot.runs.tokens import RunTokens
from bot.runspec import ENV_RUN_SECRET
from bot.store.models import Run, RunState
from tests.fake_github import FakeGitHub
from tests.runs.support import (
    World,
    eventually,
    processes_alive,
    processes_gone,
    repo_config,
    report_server,
    running,
    world,
)


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    github = FakeGitHub()  # one GitHub for the report endpoint and the worker, as in production
    with report_server(database_url, github) as base:
        async with world(database_url, tmp_path, github, PUBLIC_URL=base, KICKOFF_MAX_PARALLEL_RUNS=3) as built:
            yield built


def max_overlap(records: list[dict[str, Any]]) -> int:
    events = sorted((r["t"], 1 if r["event"] == "start" else -1) for r in records if r["event"] in ("start", "end"))
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


async def all_final(w: World, runs: list[Run]) -> bool:
    return all([await w.state(run.id) in RunState.FINAL for run in runs])


async def test_ten_runs_never_exceed_the_global_limit_of_three(w: World) -> None:
    names = [f"a{i}" for i in range(10)]
    w.default_config = repo_config({name: ["sleep=0.4"] for name in names}, max_parallel_runs=10)
    trigger, runs = await w.add_trigger(names)
    started = time.monotonic()
    async with running(w.scheduler(w.local_runner(), tracking_interval=1.0)):
        w.services.runs_changed.set()
        await eventually(lambda: all_final(w, runs), 60, "all ten runs to end")
        elapsed = time.monotonic() - started
        done = trigger.tracking_comment_id
        assert done is not None
        await eventually(lambda: asyncio.sleep(0, "all 10 runs finished" in w.github.comments[done].body), 10,
                         "the final tracking comment")
    records = w.runner_records()
    assert sorted(r["run"] for r in records if r["event"] == "start") == [run.id for run in runs]
    assert sorted(r["run"] for r in records if r["event"] == "end") == [run.id for run in runs]
    assert max_overlap(records) == 3  # observed: three at a time, never more
    assert [await w.state(run.id) for run in runs] == [RunState.SUCCEEDED] * 10
    for record in records:
        if record["event"] == "reported":
            assert record["status"] == 200
    # The tracking comment: about 40 state changes, coalesced into at most one edit per interval.
    edits = [call for call in w.github.calls_to("edit_comment") if call[3] == done]
    assert 1 <= len(edits) <= elapsed / 1.0 + 2
    bodies = [call[4] for call in edits]
    assert len(bodies) == len(set(bodies))  # never the same text twice
    body = w.github.comments[done].body
    assert body.count("✅ succeeded") == 10
    assert messages.TRACKING_MARKER.format(trigger_id=trigger.id) in body


async def test_every_ending(w: World) -> None:
    w.services.settings.max_parallel_runs = 10
    agents = {
        "crash": ["exit=3"],
        "quiet": ["sleep=0.1", "outcome=no_changes"],
        "gives-up": ["outcome=failed"],
        "silent": ["silent", "sleep=0.1"],  # reports nothing: the result file tells
        "slow": ["sleep=600"],
    }
    w.default_config = repo_config(agents, max_parallel_runs=10)
    _, runs = await w.add_trigger(list(agents))
    # Long enough for the other four to end even on a loaded machine, where runners (at the lowest CPU priority)
    # start slowly; only the slow one reaches it.
    scheduler = w.scheduler(w.local_runner(), run_deadline=lambda timeout: 10.0)
    async with running(scheduler):
        await eventually(lambda: all_final(w, runs), 60, "every run to end")
    ended = {run.agent: await w.runs.require(run.id) for run in runs}
    assert (ended["crash"].state, ended["crash"].reason) == (RunState.FAILED, messages.RUN_RUNNER_EXITED.format(
        code=3))
    assert ended["quiet"].state == RunState.NO_CHANGES
    assert (ended["gives-up"].state, ended["gives-up"].reason) == (RunState.FAILED, "the agent gave up")
    assert (ended["silent"].state, ended["silent"].progress) == (RunState.SUCCEEDED, "delivered")  # no branch: no PR
    assert ended["slow"].state == RunState.TIMED_OUT
    assert ended["quiet"].cost_usd == 0.5
    assert ended["quiet"].output_tokens == 22
    await eventually(lambda: processes_gone(str((w.tmp / "workspaces").resolve())), 5, "every runner to exit")
    assert len(w.github.revoked) == 5
    assert await RunTokens(w.services).unrevoked() == []  # and recorded as revoked


async def test_cancel_kills_the_runner_and_everything_it_started(w: World) -> None:
    w.default_config = repo_config({"stuck": ["child", "sleep=60"]})
    _, (run,) = await w.add_trigger(["stuck"])
    async with running(w.scheduler(w.local_runner())):
        w.services.runs_changed.set()
        marker = f"fake-runner-child-of-run-{run.id}-in-{(w.tmp / 'workspaces').resolve()}"
        await eventually(lambda: processes_alive(marker), 15, "the runner's child")
        await w.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED_BY.format(user="ann"))  # /agent cancel
        w.services.runs_changed.set()
        await eventually(lambda: processes_gone(marker), 15, "the process group to die")
        await eventually(lambda: processes_gone(str((w.tmp / "workspaces").resolve())), 15, "the runner")
    cancelled = await w.runs.require(run.id)
    assert (cancelled.state, cancelled.reason) == (RunState.CANCELLED, "cancelled by @ann")
    assert not any((w.tmp / "workspaces").iterdir())


async def test_after_a_restart_live_runners_are_reattached_and_dead_ones_fail(w: World) -> None:
    w.default_config = repo_config({"long": ["sleep=1.5"], "gone": ["sleep=0"]})
    _, (live, gone) = await w.add_trigger(["long", "gone"])
    async with running(w.scheduler(w.local_runner())):
        w.services.runs_changed.set()
        await eventually(lambda: asyncio.sleep(0, len(w.runner_records()) >= 2), 15, "both runners")
    # Kickoff stopped. The `gone` runner's process ended meanwhile, and its result never reached anyone.
    await eventually(lambda: all_final(w, [gone]), 15, "the quick run to report")
    async with w.store.sessions.begin() as session:
        await session.execute(update(Run).where(Run.id == gone.id).values(
            state=RunState.RUNNING, result=None, runner_ref=f"{w.local_runner().host}:999999999:/nonexistent"))
    assert await w.state(live.id) in (RunState.STARTING, RunState.RUNNING)
    async with running(w.scheduler(w.local_runner())):
        await eventually(lambda: all_final(w, [live, gone]), 20, "recovery")
    recovered = await w.runs.require(live.id)
    lost = await w.runs.require(gone.id)
    assert recovered.state == RunState.SUCCEEDED
    assert (lost.state, lost.reason) == (RunState.FAILED, messages.RUN_RUNNER_LOST)


async def test_secrets_never_reach_logs_or_the_database(
    w: World, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    caplog.set_level(logging.DEBUG)
    w.default_config = repo_config({"ok": ["sleep=0.1"], "crash": ["exit=1"]})
    _, runs = await w.add_trigger(["ok", "crash"])
    secrets: list[str] = []
    runner = w.local_runner()
    original = runner.start

    async def spy(spec: Any, env: Any, *, deadline: float) -> str:
        secrets.append(env[ENV_RUN_SECRET])
        return await original(spec, env, deadline=deadline)

    runner.start = spy  # type: ignore[method-assign,assignment]
    async with running(w.scheduler(runner)):
        w.services.runs_changed.set()
        await eventually(lambda: all_final(w, runs), 20, "both runs")
    tokens = [t.token for t in w.github.run_tokens]
    assert len(tokens) == 2
    assert len(secrets) == 2
    async with w.store.engine.connect() as conn:
        dump = ""
        for table in ("runs", "run_transitions", "triggers", "deliveries"):
            dump += repr((await conn.execute(text(f"SELECT * FROM {table}"))).all())  # noqa: S608
    for value in (*tokens, *secrets):
        assert value not in caplog.text
        assert value not in dump
        for record in w.runner_records():
            assert value not in " ".join(record.get("argv", []))
            assert value not in record.get("spec", "")
