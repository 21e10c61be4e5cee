"""The scheduler: starts queued runs on runners within the limits, fairly across repositories, and follows them.

One of the worker's loops (bot.worker), woken by `services.runs_changed` and by a periodic tick. A thin coordinator
of three parts, each pass:

1. `bot.runs.following` stops runners whose run was ended elsewhere (a cancel, a timeout) and counts those still
   alive;
2. `bot.runs.claims` holds back the runs of repositories at review capacity and claims, fairly and within the
   parallel limits, the runs that may start;
3. `bot.runs.following` starts the claimed runs (per-run token, the spec from `bot.runs.spec_builder`, the
   backend) and settles them when their runners exit.

At start-up and at every pass it takes over the runs of dead workers (bot.runs.following): no run stays
`starting` for good because the process that claimed it was killed. Then it sweeps: runners and workspaces no live
run holds are removed and the tokens of ended runs revoked; `run_sweeps` (a worker loop) sweeps again every
`KICKOFF_RUNNER_SWEEP_SECONDS`. Tracking comments
(`self.tracker`) and pull requests are the worker's other loops: the scheduler neither edits nor opens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from bot.config import RepoConfig
from bot.runs.backend import RunnerBackend
from bot.runs.claims import ClaimPolicy, ConfigLookup, OpenPullRequests
from bot.runs.following import RunnerFollower
from bot.runs.ranking import Ranker
from bot.runs.spec_builder import SpecBuilder, clone_url_for
from bot.runs.tracking import Tracker
from bot.runspec import RunSpec
from bot.services import Services
from bot.store.models import Run
from bot.store.runs import RunStore

log = logging.getLogger(__name__)


class Scheduler:
    """Starts and follows runs. `config_for`, `open_prs`, `clone_url` and `run_deadline` are injectable for tests."""

    def __init__(
        self,
        services: Services,
        backends: Mapping[str, RunnerBackend],
        *,
        config_for: ConfigLookup | None = None,
        open_prs: OpenPullRequests | None = None,
        clone_url: Callable[[str], str] | None = None,
        run_deadline: Callable[[int], float] | None = None,
        tick: float = 5.0,
        tracking_interval: float = 3.0,
        config_ttl: float = 30.0,
        timeout_margin: float = 60.0,
        sweep_interval: float = 60.0,
    ) -> None:
        if not backends:
            raise ValueError("the scheduler needs at least one runner backend")
        self.services = services
        self.backends = dict(backends)
        # Its moves to `succeeded` wake the worker's pull-request opener.
        self.runs = RunStore(services.store, clock=services.clock, succeeded=services.runs_succeeded)
        # The tracking comments of these runs; the worker's tracking loop keeps them current.
        # … and publishes a fan-out's ranking once its runs have ended (its CI: `ranker.ci`, set by bot.worker).
        self.tracker = Tracker(services, self.runs, interval=tracking_interval,
                               ranker=Ranker(services, self.runs, config_for=self.config))
        self.tick = tick
        self.sweep_interval = sweep_interval
        self.config_ttl = config_ttl
        self._config_for = config_for or (
            lambda installation_id, repo: services.configs.recent(installation_id, repo, max_age=config_ttl))
        self.specs = SpecBuilder(
            services, self.runs,
            clone_url=clone_url or (lambda repo: clone_url_for(services.settings.github_api_url, repo)),
        )
        self.claims = ClaimPolicy(services, self.runs, self.backends, config_for=self.config,
                                  open_prs=open_prs or self.runs.open_kickoff_prs)
        self.follower = RunnerFollower(
            services, self.runs, self.backends, spec_for=self.specs.build_spec, config_for=self.config,
            run_deadline=run_deadline or (lambda timeout: timeout + timeout_margin),
        )

    async def run(
        self, stop: asyncio.Event, wake: asyncio.Event | None = None, passed: asyncio.Event | None = None
    ) -> None:
        """Recover, then schedule until `stop` is set, at each `wake` (default `services.runs_changed`) or tick.

        `passed` is set after every pass: a pass changes runs (claims, holds, failures) without a wake-up, and the
        worker's tracking loop shows them at once. Runners keep running when it stops.
        """
        log.info("scheduler started (runners: %s)", ", ".join(self.backends))
        wake = wake or self.services.runs_changed
        try:
            try:
                await self.recover()
            except Exception:
                log.exception("recovering the runs of a previous process failed")
            while not stop.is_set():
                wake.clear()
                await self.step()
                if passed is not None:
                    passed.set()
                await _wait_any(wake, stop, self.tick)
        finally:
            await self.aclose()
            log.info("scheduler stopped")

    async def step(self) -> list[int]:
        """One pass; the ids of the runs started. A failure is logged and the next pass tries again."""
        try:
            return await self.schedule()
        except Exception:
            log.exception("scheduling failed; trying again at the next tick")
            return []

    async def schedule(self) -> list[int]:
        """Take over the runs of dead workers, then claim and start what the limits allow; the ids of the runs
        started."""
        try:
            await self.follower.recover()
        except Exception:
            log.exception("taking over the runs of dead workers failed; trying again at the next pass")
        lingering = await self.follower.reconcile()
        claimed = await self.claims.claim(lingering)
        try:
            await asyncio.gather(*(self.follower.start(c.run, c.config, c.backend, c.secret) for c in claimed))
        finally:
            self.specs.end_pass()
        return [c.run.id for c in claimed]

    async def build_spec(self, run: Run, config: RepoConfig) -> RunSpec:
        """Everything the runner needs to know, and nothing secret (bot.runs.spec_builder)."""
        return await self.specs.build_spec(run, config)

    async def recover(self) -> None:
        """At start-up: take over the runs of dead workers and those no worker holds (a previous version's):
        requeue the unstarted, re-attach, collect, or fail (bot.runs.following). Each pass does it again for the
        workers that died since."""
        await self.follower.recover(startup=True)

    async def sweep(self) -> list[str]:
        """Remove the runners and workspaces no live run holds, revoke the tokens of ended runs (one pass)."""
        return await self.follower.sweep()

    async def run_sweeps(self, stop: asyncio.Event) -> None:
        """Sweep every `sweep_interval` seconds until `stop` (start-up recovery has swept once already)."""
        never = asyncio.Event()
        while not stop.is_set():
            await _wait_any(never, stop, self.sweep_interval)
            if stop.is_set():
                return
            try:
                await self.sweep()
            except Exception:
                log.exception("the runner sweep failed; trying again at the next one")

    async def aclose(self) -> None:
        """Let runners being stopped finish stopping (briefly), then stop watching the rest."""
        await self.follower.aclose()

    async def config(self, installation_id: int, repo: str) -> RepoConfig:
        """A repository's config, at most `config_ttl` seconds old (the claim policy asks every pass)."""
        return await self._config_for(installation_id, repo)


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            waiters = [asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
