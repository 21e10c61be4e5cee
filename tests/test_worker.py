"""The worker: the loops of `kickoff serve` and `kickoff worker`, a loop that dies stopping it, and pull requests
opened the moment a run succeeds, or after a restart when it succeeded before a crash."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.routing import Router
from bot.store.models import Run, RunState, utcnow
from bot.worker import Loop, LoopFailed, Membership, Worker, build_worker
from tests.prs.support import config, succeed, success
from tests.runs.support import FakeBackend, World, eventually, running, world

QUIET = 30.0  # a tick that never comes during a test: what happens, happens because an event woke a loop


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path, KICKOFF_MAX_PARALLEL_RUNS=5) as built:
        built.default_config = config()
        yield built


async def pr_of(w: World, run: Run) -> int | None:
    return (await w.runs.require(run.id)).pr_number


def test_serve_and_worker_build_the_same_loops_and_redelivery_follows_its_setting(w: World) -> None:
    worker = build_worker(w.services, Router(), redeliver=True)
    assert worker.names == ["dispatcher", "runs-changed", "scheduler", "pull-requests", "tracking", "queue-sweep",
                            "redelivery", "membership"]
    assert worker.runs is not None
    assert worker.membership is not None
    assert worker.runs.scheduler.backends
    assert "redelivery" not in build_worker(w.services, Router(), redeliver=False).names  # no App credentials
    w.services.settings.dispatch.redeliver_seconds = 0
    assert "redelivery" not in build_worker(w.services, Router(), redeliver=True).names  # turned off


async def test_a_loop_that_dies_is_logged_and_stops_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []

    async def steady(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.append("steady")

    async def broken(stop: asyncio.Event) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("a bug")

    async def done(stop: asyncio.Event) -> None:
        return None  # nothing to do here (the sweep without GitHub): not a failure

    worker = Worker([Loop("steady", steady), Loop("done", done), Loop("broken", broken)])
    with pytest.raises(LoopFailed, match="its broken loop died"):
        await asyncio.wait_for(worker.run(asyncio.Event()), 5)
    assert stopped == ["steady"]  # told to stop, and it finished
    assert "the worker's broken loop died; stopping the worker" in caplog.text
    assert "RuntimeError: a bug" in caplog.text


async def test_the_worker_stops_when_asked() -> None:
    stop = asyncio.Event()

    async def steady(halt: asyncio.Event) -> None:
        await halt.wait()

    task = asyncio.create_task(Worker([Loop("a", steady), Loop("b", steady)]).run(stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_run_that_succeeds_wakes_the_pull_request_opener_at_once(w: World) -> None:
    trigger, (run,) = await w.add_trigger(["ok"])
    backend = FakeBackend()
    async with running(w.scheduler(backend, tick=QUIET)):
        await eventually(lambda: asyncio.sleep(0, bool(backend.started)), 5, "the run to start")
        (spec,) = backend.started
        await backend.end(run.id, success(run, branch=spec.branch))
        await eventually(lambda: pr_of(w, run), 5, "its pull request")
        assert trigger.tracking_comment_id is not None
        await eventually(lambda: asyncio.sleep(0, "| #101 |" in w.github.comments[trigger.tracking_comment_id].body),
                         5, "the tracking comment to link it")
    assert len(w.github.calls_to("open_pull_request")) == 1


async def test_a_run_that_succeeded_before_a_crash_gets_its_pull_request_after_the_restart(w: World) -> None:
    _, (reported, claimed) = await w.add_trigger(["ok", "two"])
    w.default_config = config(("ok", "two"))
    await succeed(w, reported)  # its report was taken, then the process died before it opened anything
    await succeed(w, claimed)
    async with w.store.sessions.begin() as session:  # this one died while opening its pull request
        await session.execute(update(Run).where(Run.id == claimed.id).values(
            progress="delivering", updated_at=utcnow() - timedelta(minutes=10)))
    assert w.github.calls_to("open_pull_request") == []
    async with running(w.scheduler(FakeBackend(), tick=QUIET)):
        await eventually(lambda: pr_of(w, reported), 5, "the reported run's pull request")
        await eventually(lambda: pr_of(w, claimed), 5, "the half-delivered run's pull request")
    for run in (reported, claimed):
        stored = await w.runs.require(run.id)
        assert (stored.state, stored.progress) == (RunState.SUCCEEDED, "delivered")
    assert len(w.github.calls_to("open_pull_request")) == 2


async def test_membership_registers_before_the_loops_and_a_clean_stop_marks_the_worker_stopped(w: World) -> None:
    membership = Membership(w.services)
    seen: list[int | None] = []

    async def claimer(stop: asyncio.Event) -> None:
        seen.append(w.services.worker_id)  # what a claim would name
        await stop.wait()

    stop = asyncio.Event()
    task = asyncio.create_task(Worker([Loop("claimer", claimer)], membership=membership).run(stop))
    await eventually(lambda: _true(bool(seen)), 10, "the loop to start")
    (worker_id,) = seen
    assert worker_id is not None
    row = await membership.workers.get(worker_id)
    assert row is not None
    assert (row.pid, row.stopped_at) == (os.getpid(), None)
    assert row.process_started is not None
    stop.set()
    await asyncio.wait_for(task, 10)
    row = await membership.workers.get(worker_id)
    assert row is not None
    assert row.stopped_at is not None
    assert w.services.worker_id is None


async def test_a_worker_declared_dead_while_it_lived_registers_again(w: World) -> None:
    membership = Membership(w.services)
    first = await membership.join()
    await membership.workers.stop(first)  # another worker buried it (its heartbeat had stalled)
    await membership.beat()
    assert membership.worker_id not in (None, first)
    assert w.services.worker_id == membership.worker_id
    await membership.leave()


async def _true(value: bool) -> bool:
    return value
