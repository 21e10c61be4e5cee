"""The watchdog every remote backend shares, over a scripted platform: ends, deadlines, cancels, restarts, orphans;
and the scheduler's recovery with a remote backend (lost runs failed, orphaned jobs deleted)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from bot import messages
from bot.runners.watchdog import RemoteRunner, RemoteStatus
from bot.runspec import RunSpec
from bot.store.models import RunState
from tests.runners.remote_support import SECRETS, Exits, eventually, make_spec
from tests.runs.support import World, live_worker, world


class Platform(RemoteRunner):
    """Jobs in a dict: a test sets a job's status; every verb is recorded."""

    name = "scripted"
    prefix = "job:"

    def __init__(self) -> None:
        super().__init__(poll_seconds=0.01, grace_seconds=0.2)
        self.jobs: dict[str, RemoteStatus] = {}
        self.labels: dict[str, int] = {}
        self.launched: list[tuple[RunSpec, dict[str, str], float]] = []
        self.stopped: list[str] = []
        self.removed: list[str] = []
        self.failing_observations = 0
        self.ignore_stop = False

    async def _launch(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> str:
        ref = f"job:{spec.run_id}"
        self.launched.append((spec, dict(secrets), deadline))
        self.jobs[ref] = RemoteStatus("pending")
        self.labels[ref] = spec.run_id
        return ref

    async def _observe(self, ref: str, within: float) -> RemoteStatus:
        if self.failing_observations:
            self.failing_observations -= 1
            raise RuntimeError("platform API unavailable")
        return self.jobs.get(ref, RemoteStatus("gone"))

    async def _stop(self, ref: str) -> None:
        self.stopped.append(ref)
        if ref in self.jobs and not self.ignore_stop:
            self.jobs[ref] = RemoteStatus("finished", 143)

    async def _remove(self, ref: str) -> None:
        self.removed.append(ref)
        self.jobs.pop(ref, None)
        self.labels.pop(ref, None)

    async def _list(self) -> dict[int, str]:
        return {run_id: ref for ref, run_id in self.labels.items()}


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    backend = Platform()
    yield backend
    await backend.aclose()


async def test_a_job_that_finishes_is_reported_and_removed(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(1), SECRETS, deadline=30)
    assert ref == "job:1"
    assert platform.running() == {1: "job:1"}
    platform.jobs[ref] = RemoteStatus("running")
    platform.jobs[ref] = RemoteStatus("finished", 0, detail="done")
    [exit_] = await exits.wait()
    assert (exit_.run_id, exit_.exit_code, exit_.timed_out, exit_.cancelled) == (1, 0, False, False)
    assert exit_.result is None  # remote results travel through the report endpoint
    assert platform.running() == {}
    await eventually(lambda: _contains(platform.removed, ref))


async def _contains(items: list[str], item: str) -> bool:
    return item in items


async def test_a_failed_job_reports_its_exit_code(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(2), SECRETS, deadline=30)
    platform.jobs[ref] = RemoteStatus("finished", 3, detail="the pod failed")
    [exit_] = await exits.wait()
    assert (exit_.exit_code, exit_.log_tail) == (3, "the pod failed")


async def test_the_platforms_own_timeout_is_a_timeout(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(3), SECRETS, deadline=30)
    platform.jobs[ref] = RemoteStatus("finished", None, timed_out=True)
    [exit_] = await exits.wait()
    assert exit_.timed_out
    assert not exit_.cancelled


async def test_kickoffs_deadline_stops_the_job_and_reports_timed_out(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(4), SECRETS, deadline=0.1)
    platform.jobs[ref] = RemoteStatus("running")
    [exit_] = await exits.wait()
    assert exit_.timed_out
    assert not exit_.cancelled
    assert platform.stopped == [ref]


async def test_a_job_that_ignores_the_stop_is_settled_after_the_grace_period(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    platform.ignore_stop = True
    ref = await platform.start(make_spec(5), SECRETS, deadline=0.05)
    platform.jobs[ref] = RemoteStatus("running")
    [exit_] = await exits.wait()
    assert exit_.timed_out
    assert exit_.exit_code is None
    await eventually(lambda: _contains(platform.removed, ref))


async def test_cancel_stops_the_job_and_reports_cancelled(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(6), SECRETS, deadline=30)
    platform.jobs[ref] = RemoteStatus("running")
    await platform.cancel(6)
    [exit_] = exits.seen
    assert exit_.cancelled
    assert not exit_.timed_out
    assert platform.stopped == [ref]
    await platform.cancel(6)  # a second cancel of a settled run does nothing
    assert platform.stopped == [ref]


async def test_observation_errors_are_tolerated(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    platform.failing_observations = 5
    ref = await platform.start(make_spec(7), SECRETS, deadline=30)
    platform.jobs[ref] = RemoteStatus("finished", 0)
    [exit_] = await exits.wait()
    assert exit_.exit_code == 0


async def test_only_the_runner_secrets_are_passed(platform: Platform) -> None:
    with pytest.raises(ValueError, match="not runner secrets"):
        await platform.start(make_spec(8), {**SECRETS, "PRIVATE_KEY": "x"}, deadline=30)


async def test_follow_reattaches_to_a_live_job_and_refuses_a_gone_one(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    platform.jobs["job:9"] = RemoteStatus("running")
    assert await platform.follow(9, "job:9", deadline=30)
    assert platform.running() == {9: "job:9"}
    assert not await platform.follow(10, "job:10", deadline=30)
    assert not await platform.follow(11, "elsewhere:11", deadline=30)
    assert await platform.collect(10, "job:10") is None
    platform.jobs["job:9"] = RemoteStatus("finished", 0)
    assert [e.run_id for e in await exits.wait()] == [9]


async def test_sweep_deletes_jobs_no_run_holds(platform: Platform) -> None:
    platform.jobs.update({"job:20": RemoteStatus("running"), "job:21": RemoteStatus("running")})
    platform.labels.update({"job:20": 20, "job:21": 21})
    assert await platform.sweep({20}) == ["job:21"]
    assert platform.removed == ["job:21"]


async def test_aclose_lets_jobs_run_on(platform: Platform) -> None:
    exits = Exits()
    platform.bind(exits)
    ref = await platform.start(make_spec(30), SECRETS, deadline=30)
    await platform.aclose()
    assert platform.running() == {}
    assert ref in platform.jobs
    assert platform.stopped == []
    assert exits.seen == []


# ---- The scheduler with a remote backend ------------------------------------------------------------------------


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as built:
        yield built


async def test_scheduler_starts_and_settles_a_remote_run(w: World) -> None:
    backend = Platform()
    backend.name = "local"  # the default runner
    scheduler = w.scheduler(backend)
    _, [run] = await w.add_trigger()
    assert await scheduler.step() == [run.id]
    assert (await w.runs.require(run.id)).runner_ref == f"job:{run.id}"
    backend.jobs[f"job:{run.id}"] = RemoteStatus("finished", 1)
    await eventually(lambda: _state_is(w, run.id, RunState.FAILED))
    assert (await w.runs.require(run.id)).reason == messages.RUN_RUNNER_EXITED.format(code=1)
    await scheduler.aclose()


async def _state_is(w: World, run_id: int, state: str) -> bool:
    return await w.state(run_id) == state


async def test_recovery_fails_lost_runs_reattaches_live_ones_and_deletes_orphans(w: World) -> None:
    _, [lost, alive, fresh] = await w.add_trigger(["a", "b", "c"])
    for run in (lost, alive, fresh):
        assert await w.runs.transition(run.id, RunState.STARTING, from_state=RunState.QUEUED)
    await w.runs.update(lost.id, runner="local", runner_ref=f"job:{lost.id}")
    await w.runs.update(alive.id, runner="local", runner_ref=f"job:{alive.id}")
    assert await w.runs.move(alive.id, RunState.RUNNING)
    # `fresh` is being started by another worker right now, alive: no ref yet, and nobody else's to take over.
    other = await live_worker(w)
    await w.runs.update(fresh.id, runner="local", worker_id=other)

    backend = Platform()
    backend.name = "local"
    backend.jobs[f"job:{alive.id}"] = RemoteStatus("running")
    backend.labels.update({f"job:{alive.id}": alive.id, f"job:{fresh.id}": fresh.id, "job:999": 999})
    backend.jobs.update({f"job:{fresh.id}": RemoteStatus("pending"), "job:999": RemoteStatus("running")})
    scheduler = w.scheduler(backend)
    await scheduler.recover()

    assert await w.state(lost.id) == RunState.FAILED
    assert (await w.runs.require(lost.id)).reason == messages.RUN_RUNNER_LOST
    assert await w.state(alive.id) == RunState.RUNNING
    assert backend.running() == {alive.id: f"job:{alive.id}"}
    assert await w.state(fresh.id) == RunState.STARTING
    assert "job:999" in backend.removed  # an orphan: no run in the database holds it
    assert f"job:{fresh.id}" not in backend.removed
    await scheduler.aclose()
