"""The worker: Kickoff's background loops, run by `kickoff serve` (from its lifespan) and by `kickoff worker`.

Peer loops, each woken by an event on `Services` and by a periodic tick (the tick catches what other processes
did: a report taken by a `kickoff serve --no-worker`, a run planned by another worker):

- `dispatcher`: inbox deliveries to their handlers (`services.wakeup`; bot.dispatcher);
- `scheduler`: claims and starts queued runs, follows their runners (`services.runs_changed`; bot.runs.scheduler);
- `pull-requests`: opens the pull request of each succeeded run (`services.runs_succeeded`; bot.prs.opening). The
  run itself is the durable record that its pull request is due (`succeeded`, progress `finished`), so a run that
  succeeded just before a crash gets its pull request after the restart;
- `tracking`: edits the tracking comments whose runs changed (`services.runs_changed`, after every scheduling
  pass, and when a coalesced edit falls due; bot.runs.tracking);
- `queue-sweep`: repairs missed review-queue webhooks and times out checks (bot.queue.service);
- `retention`: deletes handled deliveries and their payloads past `KICKOFF_DELIVERY_RETENTION_DAYS`, in batches,
  every `KICKOFF_RETENTION_SECONDS` (bot.store.retention);
- `redelivery`: asks GitHub again for deliveries that never reached Kickoff (`KICKOFF_REDELIVER_SECONDS`, 0 = off;
  only with the App's own credentials; bot.redelivery);
- `membership`: the worker's row in `workers` (bot.store.workers), registered before any other loop starts and
  heartbeat every `KICKOFF_HEARTBEAT_SECONDS`; each beat also buries the workers found dead (silent for
  `KICKOFF_WORKER_TIMEOUT_SECONDS`, or, on this host, whose process is gone), which ends their delivery leases, and
  wakes the loops that take their runs and pull requests over. A clean stop marks the row stopped once every other
  loop has finished, so what this worker held is free at once.

Supervised: every loop catches its own per-pass failures; a loop that dies anyway is logged and stops the worker
(the others are told to stop and finish what they are doing), and `Worker.run` raises `LoopFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.dispatcher import Dispatcher
from bot.features import Features
from bot.prs.brief import refresh_fan_out
from bot.prs.opening import OpenedHook, PullRequestOpener
from bot.queue.heads import HeadCI
from bot.queue.sweeper import build_sweeper
from bot.redelivery import redeliver_periodically
from bot.routing import Router
from bot.runners.registry import build_scheduler
from bot.runs.scheduler import Scheduler
from bot.services import Services
from bot.store.retention import Retention, prune_periodically
from bot.store.workers import Identity, WorkerStore

log = logging.getLogger(__name__)


class LoopFailed(RuntimeError):
    """A loop of the worker died; the worker stopped. The traceback is in the log."""


@dataclass(frozen=True, slots=True)
class Loop:
    """One of the worker's loops: `run(stop)` returns once `stop` is set (or when it has nothing to do)."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


async def wait_any(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Until `event` or `stop` is set, or `seconds` have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            waiters = [asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()


class RunLoops:
    """The loops around runs, sharing one scheduler (its run store, its config cache, its tracker)."""

    def __init__(self, services: Services, scheduler: Scheduler, *, on_opened: OpenedHook | None = None) -> None:
        self.services = services
        self.scheduler = scheduler
        self.tracker = scheduler.tracker
        if isinstance(services, Features) and self.tracker.ranker is not None and self.tracker.ranker.ci is None:
            # The fan-out ranking weighs the CI the queue's webhooks keep on each head.
            self.tracker.ranker.ci = HeadCI(services.queue.facts, services.settings.app_id)
        if self.tracker.on_ranked is None and services.github is not None:
            github = services.github
            # Once a fan-out is ranked, each sibling's reviewer brief says where it stands.
            self.tracker.on_ranked = lambda trigger_id: refresh_fan_out(services, github, trigger_id)
        self.opener = PullRequestOpener(services, scheduler.runs, config_for=scheduler.config, on_opened=on_opened)
        # `services.runs_changed` has two consumers; each gets its own copy, so neither clears the other's.
        self._schedule_due = asyncio.Event()
        self._tracking_due = asyncio.Event()

    def loops(self) -> list[Loop]:
        return [
            Loop("runs-changed", self._fan_out),
            Loop("scheduler", lambda stop: self.scheduler.run(stop, self._schedule_due, self._tracking_due)),
            Loop("pull-requests", self._open_pull_requests),
            Loop("tracking", self._track),
            Loop("runner-sweep", self.scheduler.run_sweeps),
        ]

    async def settle(self) -> list[int]:
        """One pass of each loop, in order: schedule, open pull requests, edit tracking comments; the ids of the
        runs started. For tests and one-shot tools; the loops do this continuously."""
        started = await self.scheduler.step()
        await self.open_pull_requests()
        await self.track()
        return started

    async def open_pull_requests(self) -> int:
        """Open the pull requests that are due; how many runs were delivered."""
        try:
            return await self.opener.process()
        except Exception:
            log.exception("opening pull requests failed; trying again at the next tick")
            return 0

    async def track(self) -> None:
        try:
            await self.tracker.refresh()
        except Exception:
            log.exception("updating tracking comments failed")

    async def _fan_out(self, stop: asyncio.Event) -> None:
        changed = self.services.runs_changed
        while not stop.is_set():
            await wait_any(changed, stop, 3600)
            if changed.is_set():
                changed.clear()
                self._schedule_due.set()
                self._tracking_due.set()

    async def _open_pull_requests(self, stop: asyncio.Event) -> None:
        succeeded = self.services.runs_succeeded
        while not stop.is_set():
            succeeded.clear()
            await self.open_pull_requests()
            await wait_any(succeeded, stop, self.scheduler.tick)

    async def _track(self, stop: asyncio.Event) -> None:
        due = self._tracking_due
        while not stop.is_set():
            due.clear()
            await self.track()
            timeout = self.scheduler.tick
            pending = self.tracker.due_in()
            if pending is not None:
                timeout = min(timeout, max(pending, 0.01))
            await wait_any(due, stop, timeout)


class Membership:
    """This process's row in `workers`: registered by `join`, heartbeat by `run`, stopped by `leave`.

    `services.worker_id` is the row's id, which every claim the worker takes names. A worker declared dead while it
    lived (its heartbeat stalled past the timeout) learns it at its next beat: it registers again, as a new worker,
    and what it held is another's already.
    """

    def __init__(self, services: Services, *, identity: Identity | None = None) -> None:
        self.services = services
        settings = services.settings.workers
        self.interval = settings.heartbeat_seconds
        self.workers = WorkerStore(services.store, timeout=timedelta(seconds=settings.timeout_seconds),
                                   clock=services.clock)
        self.identity = identity or Identity.here()
        self.worker_id: int | None = None

    async def join(self) -> int:
        """Register (and bury the workers already dead: a restarted process frees its old self's claims now)."""
        self.worker_id = await self.workers.register(self.identity)
        self.services.worker_id = self.worker_id
        log.info("worker %s registered (%s, pid %s)", self.worker_id, self.identity.host, self.identity.pid)
        await self.reap()
        return self.worker_id

    async def beat(self) -> None:
        """One heartbeat and one reaping pass."""
        if self.worker_id is None:
            await self.join()
            return
        if not await self.workers.heartbeat(self.worker_id):
            log.warning("worker %s was declared dead while it lived (its heartbeat stalled); registering again",
                        self.worker_id)
            await self.join()
            return
        await self.reap()

    async def reap(self) -> list[int]:
        buried = await self.workers.reap(self.identity, exclude=self.worker_id)
        if buried:
            # Their leases are due now, their runs and pull requests free: look at once.
            self.services.wakeup.set()
            self.services.runs_changed.set()
            self.services.runs_succeeded.set()
        return buried

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until `stop` is set (a failed beat is logged and tried again at the next)."""
        while not stop.is_set():
            await wait_any(stop, stop, self.interval)
            if stop.is_set():
                return
            try:
                await self.beat()
            except Exception:
                log.exception("the worker's heartbeat failed; trying again")

    async def leave(self) -> None:
        """A clean stop: the row is marked stopped, and what the worker still held is released."""
        if self.worker_id is None:
            return
        try:
            await self.workers.stop(self.worker_id)
        except Exception:
            log.exception("could not mark worker %s stopped; the others find it dead after its timeout",
                          self.worker_id)
        self.services.worker_id = None
        self.worker_id = None


class Worker:
    """Runs its loops side by side until stopped, or until one of them dies."""

    def __init__(self, loops: Sequence[Loop], *, runs: RunLoops | None = None,
                 dispatcher: Dispatcher[Features] | None = None, membership: Membership | None = None) -> None:
        self.loops = list(loops)
        self.runs = runs
        self.dispatcher = dispatcher
        self.membership = membership
        if membership is not None:
            self.loops.append(Loop("membership", membership.run))

    @property
    def names(self) -> list[str]:
        return [loop.name for loop in self.loops]

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until `stop` is set; raises `LoopFailed` once all stopped if one of them died."""
        halt = asyncio.Event()  # `stop`, or a loop died
        died: list[str] = []

        async def supervised(loop: Loop) -> None:
            try:
                await loop.run(halt)
            except Exception:
                log.exception("the worker's %s loop died; stopping the worker", loop.name)
                died.append(loop.name)
                halt.set()

        async def relay() -> None:
            await stop.wait()
            halt.set()

        if self.membership is not None:
            try:
                await self.membership.join()  # before any claim, so every claim names this worker
            except Exception as exc:
                log.exception("the worker could not register")
                raise LoopFailed(f"the worker could not register in the database: {type(exc).__name__}") from None
        watcher = asyncio.create_task(relay(), name="worker-stop")
        log.info("worker started: %s", ", ".join(self.names))
        try:
            await asyncio.gather(*(asyncio.create_task(supervised(loop), name=loop.name) for loop in self.loops))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self.membership is not None:
                await self.membership.leave()  # every loop has finished: nothing it holds is in use any more
        if died:
            raise LoopFailed(f"the worker stopped: its {', '.join(died)} loop died (see the log above)")
        log.info("worker stopped")


def build_worker(services: Features, router: Router[Features], *, redeliver: bool) -> Worker:
    """The worker of `kickoff serve` and `kickoff worker`. `redeliver`: GitHub is the App's own gateway (not a
    stand-in), so its deliveries can be asked for again, every `KICKOFF_REDELIVER_SECONDS` (0 = never)."""
    dispatcher = Dispatcher(services, router)
    runs = RunLoops(services, build_scheduler(services), on_opened=services.queue.seed_opened)
    loops = [Loop("dispatcher", dispatcher.run), *runs.loops(), Loop("queue-sweep", build_sweeper(services.queue).run)]
    dispatch = services.settings.dispatch
    retention = Retention(services.store, days=dispatch.delivery_retention_days, batch=dispatch.retention_batch)
    loops.append(Loop("retention", lambda stop: prune_periodically(
        retention, stop, dispatch.retention_seconds, services.clock
    )))
    every = dispatch.redeliver_seconds
    if redeliver and every > 0:
        loops.append(Loop("redelivery", lambda stop: redeliver_periodically(services, stop, every)))
    return Worker(loops, runs=runs, dispatcher=dispatcher, membership=Membership(services))
