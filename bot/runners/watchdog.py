"""The watchdog every remote backend (GitHub Actions, Kubernetes, Fly) shares: follow a remote job to its end.

A remote backend only knows how to launch a job, look at it, stop it, delete it and list Kickoff's jobs; this base
class turns that into the `RunnerBackend` protocol. Each job gets one watcher task that observes it until it ends
or until Kickoff's own deadline (the run's timeout plus a margin) passes: then the job is stopped and the run is
reported `timed_out`, whatever the platform's own limits did or did not do. A cancel stops the job and reports
`cancelled`. The result itself travels through the report endpoint; the exit is the safety net, as for `local`.

After a restart the scheduler re-attaches (`follow`) to the jobs its runs name, fails the runs whose job is gone
("runner lost"), and `sweep` deletes the jobs with Kickoff's labels that no run in the database holds.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from bot.runs.backend import RUNNER_SECRETS, ExitHandler, RunnerError, RunnerExit
from bot.runspec import RunResult, RunSpec

log = logging.getLogger(__name__)

MAX_QUIET_FAILURES: Final = 3  # observation errors in a row before each one is logged as a warning

State = Literal["pending", "running", "finished", "gone"]


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """What a platform says of one job. `gone`: it does not exist (any more)."""

    state: State
    exit_code: int | None = None
    timed_out: bool = False  # the platform's own deadline stopped it
    cancelled: bool = False  # stopped from outside Kickoff (e.g. a user cancelled the workflow run)
    detail: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "gone")


@dataclass(eq=False)
class _Job:
    run_id: int
    ref: str
    deadline: float  # event-loop time
    watcher: asyncio.Task[None] | None = None
    cancelled: bool = False
    timed_out: bool = False
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


class RemoteRunner(abc.ABC):
    """A `RunnerBackend` over a remote job API. Subclasses set `name` and `prefix` and implement the `_` verbs."""

    name: str
    prefix: str  # every ref of this backend starts with it, e.g. "k8s:"
    long_polls: bool = False  # `_observe` itself waits up to `within` (Fly's wait endpoint)

    def __init__(self, *, poll_seconds: float, grace_seconds: float = 30.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._jobs: dict[int, _Job] = {}
        # Jobs the last sweep found unheld: deleted if the next sweep finds them unheld again.
        self._suspects: set[int] = set()
        self._on_exit: ExitHandler | None = None

    @abc.abstractmethod
    async def _launch(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> str:
        """Create the job; its ref. Raises `RunnerError` with a message users may read."""

    @abc.abstractmethod
    async def _observe(self, ref: str, within: float) -> RemoteStatus:
        """The job's status now (or, for long-polling backends, once it ends or `within` seconds pass)."""

    @abc.abstractmethod
    async def _stop(self, ref: str) -> None:
        """Ask the platform to stop the job (idempotent; a job already gone is fine)."""

    @abc.abstractmethod
    async def _remove(self, ref: str) -> None:
        """Delete what is left of the job (idempotent)."""

    @abc.abstractmethod
    async def _list(self) -> dict[int, str]:
        """Kickoff's jobs on the platform, by their labels: run id → ref."""

    async def _close(self) -> None:  # noqa: B027 - optional: most platforms hold no client of their own
        """Release clients; called by `aclose`."""

    def bind(self, on_exit: ExitHandler) -> None:
        self._on_exit = on_exit

    def running(self) -> Mapping[int, str]:
        return {run_id: job.ref for run_id, job in self._jobs.items()}

    def owns(self, ref: str) -> bool:
        return ref.startswith(self.prefix)

    async def start(self, spec: RunSpec, secrets: Mapping[str, str], *, deadline: float) -> str:
        unknown = set(secrets) - RUNNER_SECRETS
        if unknown:
            raise ValueError(f"not runner secrets: {sorted(unknown)}")
        if spec.run_id in self._jobs:
            raise RunnerError(f"run {spec.run_id} already has a runner here")
        ref = await self._launch(spec, secrets, deadline)
        self._watch(spec.run_id, ref, deadline)
        log.info("run %s: %s runner started (%s)", spec.run_id, self.name, ref)
        return ref

    async def follow(self, run_id: int, ref: str, *, deadline: float) -> bool:
        if not self.owns(ref):
            return False
        if run_id in self._jobs:
            return True
        try:
            status = await self._observe(ref, 0.0)
        except Exception as exc:
            log.warning("run %s: cannot see its %s runner %s (%s)", run_id, self.name, ref, exc)
            return False
        if status.state == "gone":
            return False
        self._watch(run_id, ref, deadline)
        log.info("run %s: re-attached to its %s runner (%s)", run_id, self.name, ref)
        return True

    async def collect(self, run_id: int, ref: str) -> RunResult | None:
        return None  # a remote runner's result travels only through the report endpoint

    async def find(self, run_id: int) -> str | None:
        """The job with Kickoff's labels for `run_id`, if the platform lists one."""
        if run_id in self._jobs:
            return self._jobs[run_id].ref
        try:
            return (await self._list()).get(run_id)
        except Exception as exc:
            log.warning("run %s: could not list Kickoff's %s jobs to find its runner (%s)", run_id, self.name, exc)
            return None

    async def cancel(self, run_id: int) -> None:
        job = self._jobs.get(run_id)
        if job is None:
            return
        if not job.timed_out:
            job.cancelled = True
        await self._stop_job(job)
        if job.watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(job.watcher)

    async def cleanup(self, run_id: int, ref: str) -> None:
        if self.owns(ref):
            await self._remove(ref)

    async def aclose(self) -> None:
        for job in list(self._jobs.values()):
            if job.watcher is not None:
                job.watcher.cancel()
        for job in list(self._jobs.values()):
            if job.watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await job.watcher
        self._jobs.clear()
        await self._close()

    async def sweep(self, known: Collection[int]) -> list[str]:
        """Delete the jobs with Kickoff's labels whose run is not in `known` (nor watched here) at two sweeps in a
        row; their refs.

        Twice, because `known` is read before the jobs are listed: a run claimed in between (here or by another
        worker) has a job but is not in `known` yet. A job that exists at one sweep was claimed before it, so the
        next sweep's `known` holds its run unless the run is over.
        """
        removed: list[str] = []
        try:
            jobs = await self._list()
        except Exception as exc:
            log.warning("could not list Kickoff's %s jobs to delete orphans (%s)", self.name, exc)
            return removed
        unheld = {run_id for run_id in jobs if run_id not in known and run_id not in self._jobs}
        suspects, self._suspects = self._suspects, unheld
        for run_id, ref in jobs.items():
            if run_id not in unheld or run_id not in suspects:
                continue
            log.info("run %s: deleting its %s job %s, which no run in the database holds", run_id, self.name, ref)
            try:
                await self._remove(ref)
            except Exception as exc:
                log.warning("could not delete the orphaned %s job %s: %s", self.name, ref, exc)
                continue
            removed.append(ref)
            self._suspects.discard(run_id)
        return removed

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _watch(self, run_id: int, ref: str, deadline: float) -> None:
        job = _Job(run_id, ref, self._now() + deadline)
        self._jobs[run_id] = job
        job.watcher = asyncio.create_task(self._follow(job), name=f"{self.name}-run-{run_id}")

    async def _stop_job(self, job: _Job) -> None:
        try:
            await self._stop(job.ref)
        except Exception as exc:
            log.warning("run %s: stopping its %s runner failed (%s); deleting it", job.run_id, self.name, exc)
            with contextlib.suppress(Exception):
                await self._remove(job.ref)
        job.stopped.set()

    async def _follow(self, job: _Job) -> None:
        status = await self._until_end(job)
        self._jobs.pop(job.run_id, None)
        code = status.exit_code if status is not None else None
        log.info("run %s: %s runner ended (%s, exit %s)", job.run_id, self.name,
                 status.state if status else "stopped", code)
        if self._on_exit is not None:
            cancelled = job.cancelled or (status is not None and status.cancelled and not job.timed_out)
            timed_out = job.timed_out or (status is not None and status.timed_out and not job.cancelled)
            exit_ = RunnerExit(job.run_id, code, None, timed_out, cancelled, status.detail if status else "")
            try:
                await self._on_exit(exit_)
            except Exception:
                log.exception("run %s: handling the runner's exit failed", job.run_id)
        try:
            await self._remove(job.ref)
        except Exception as exc:
            log.info("run %s: could not delete its %s runner %s (%s)", job.run_id, self.name, job.ref, exc)

    async def _until_end(self, job: _Job) -> RemoteStatus | None:
        """Observe until the job ends; on the deadline stop it. None: stopped and never seen to end."""
        failures = 0
        while True:
            remaining = job.deadline - self._now()
            if remaining <= 0 and not job.stopped.is_set():
                job.timed_out = not job.cancelled
                log.warning("run %s: its %s runner passed Kickoff's deadline; stopping it", job.run_id, self.name)
                await self._stop_job(job)
            if job.stopped.is_set() and job.deadline + self.grace_seconds <= self._now():
                return None  # stopped, but the platform never said it ended: settle anyway
            within = max(0.0, min(self.poll_seconds, remaining if remaining > 0 else self.poll_seconds))
            seen = True
            began = self._now()
            try:
                status = await self._observe(job.ref, within)
            except Exception as exc:
                failures += 1
                seen = False
                (log.warning if failures >= MAX_QUIET_FAILURES else log.info)(
                    "run %s: cannot see its %s runner (%s)", job.run_id, self.name, exc)
            else:
                failures = 0
                if status.ended:
                    return status
            if job.stopped.is_set() and job.deadline > self._now():
                job.deadline = self._now()  # a cancel: give the platform only the grace period to confirm
            if not self.long_polls or not seen or job.stopped.is_set():
                await self._sleep_or_stop(job, within)
            else:
                # A long poll that came back early (the platform did not wait): do not hammer it.
                await self._sleep_or_stop(job, max(0.0, within - (self._now() - began)))

    async def _sleep_or_stop(self, job: _Job, seconds: float) -> None:
        """Sleep between observations, waking at once when the job is stopped."""
        if job.stopped.is_set():
            # Waiting for the platform to confirm a stop: look more often, within the grace period.
            await asyncio.sleep(min(seconds, max(0.01, self.grace_seconds / 10)))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await job.stopped.wait()
