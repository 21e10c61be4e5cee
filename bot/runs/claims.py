"""Claim policy: which queued runs may start now, on which backend.

- the runs of repositories at review capacity (`limits.max_open_prs` Kickoff PRs awaiting review, a fan-out's
  siblings counting as one, as they take one review slot) or past their daily budget (`limits.daily_cost_usd`: the
  cost of the runs finished since 00:00 UTC) are held back: they go to `waiting`, with the reason (for the budget,
  when it resets), which the tracking comment shows. A fan-out's judge run (kind `judge`) is not held for review
  capacity: it opens no pull request, and the fan-out it ranks waits for it;
- runs are claimed oldest first but round-robin by repository (the repository with the fewest runs on runners goes
  next), within `KICKOFF_MAX_PARALLEL_RUNS` and the repository's `limits.max_parallel_runs`. A claim is one guarded
  UPDATE that re-checks the limits, so several schedulers never start a run twice nor exceed a limit;
- the report secret is made with the claim (only its sha256 is stored), before any runner could report.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from bot import messages
from bot.config import ConfigError, RepoConfig
from bot.github import GitHubError, NotFound, PermissionDenied
from bot.logs import register_secret
from bot.runs.backend import RunnerBackend
from bot.services import Services
from bot.store.models import JUDGE_KIND, Run, RunState
from bot.store.runs import RunStore, secret_hash

log = logging.getLogger(__name__)

ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
"""`(installation_id, "owner/name") → RepoConfig`: the repository's config from its default branch."""
OpenPullRequests = Callable[[str], Awaitable[int]]
"""`"owner/name" → how many review slots Kickoff pull requests take there` (a fan-out's count once)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A run this process now holds (`starting`), to start on `backend` with its report secret."""

    run: Run
    config: RepoConfig
    backend: RunnerBackend
    secret: str


def utc_midnight(now: datetime) -> datetime:
    """The start of `now`'s day in UTC: where a daily budget's day begins (and, a day later, resets)."""
    day = now.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class ClaimPolicy:
    """Decides and claims, pass by pass, which candidate runs start."""

    def __init__(
        self,
        services: Services,
        runs: RunStore,
        backends: Mapping[str, RunnerBackend],
        *,
        config_for: ConfigLookup,
        open_prs: OpenPullRequests,
    ) -> None:
        self.services = services
        self.runs = runs
        self.backends = backends
        self._config_for = config_for
        self._open_prs = open_prs

    async def claim(self, lingering: Mapping[str, int]) -> list[Claim]:
        """Claim what the limits allow. `lingering` counts, per repository, the runners this process still has
        alive for runs already final in the database: they hold a slot until they exit."""
        candidates = await self.runs.candidates()
        if not candidates or self.services.github is None:
            return []
        queues: dict[str, deque[Run]] = defaultdict(deque)
        for run in candidates:
            queues[run.repository].append(run)
        on_runner = await self.runs.on_runner()
        lingering_total = sum(lingering.values())
        busy = {repo: on_runner.by_repo.get(repo, 0) + lingering.get(repo, 0) for repo in queues}
        global_limit = self.services.settings.max_parallel_runs
        global_room = global_limit - on_runner.total - lingering_total

        configs: dict[str, RepoConfig] = {}
        for repo, queue in queues.items():
            config = await self._startable_config(repo, queue)
            if config is not None:
                configs[repo] = config

        backends: dict[str, RunnerBackend] = {}
        for repo, config in list(configs.items()):
            backend = self._backend_for(config)
            if backend is None:  # nothing here can ever start its runs
                runner = config.runner or self.services.settings.runner
                reason = messages.RUN_RUNNER_UNAVAILABLE.format(
                    runner=runner, available=", ".join(sorted(self.backends)))
                for run in queues.pop(repo):
                    await self.fail_unstarted(run, reason)
                del configs[repo]
            else:
                backends[repo] = backend

        # The whole pass's claims in one transaction, off the event loop: a fan-out of 32 claimed one transaction at
        # a time blocked the loop (and so the webhook acks) for 70-125 ms.
        room = {repo: config.limits.max_parallel_runs - busy[repo] for repo, config in configs.items()}
        taken: list[tuple[Run, str, str]] = []
        if global_room > 0 and any(left > 0 for left in room.values()):
            taken = await self.runs.claim_batch(lambda conn: self._claim_all(
                conn, queues, configs, backends, busy, room, global_room, global_limit, lingering))
        claimed: list[Claim] = []
        for run, repo, secret in taken:
            run.worker_id = self.services.worker_id
            register_secret(secret, run_id=run.id)
            claimed.append(Claim(run, configs[repo], backends[repo], secret))

        for repo in configs:
            for run in queues[repo]:
                if run.state == RunState.WAITING:  # review capacity is back, but no runner is free yet
                    await self.runs.explain_wait(run.id, messages.RUN_WAITING_FOR_SLOT)
        return claimed

    def _claim_all(
        self,
        conn: Connection,
        queues: Mapping[str, deque[Run]],
        configs: Mapping[str, RepoConfig],
        backends: Mapping[str, RunnerBackend],
        busy: dict[str, int],
        room: dict[str, int],
        global_room: int,
        global_limit: int,
        lingering: Mapping[str, int],
    ) -> list[tuple[Run, str, str]]:
        """In the claim transaction: claim oldest first, round-robin by repository, within the limits; the runs
        taken, with their repository and report secret. The runs left in `queues` wait."""
        lingering_total = sum(lingering.values())
        taken: list[tuple[Run, str, str]] = []
        eligible = {repo for repo in configs if room[repo] > 0}
        while global_room > 0 and eligible:
            # Fair share: the repository with the fewest runs on runners goes next; ties by its oldest run.
            repo = min(eligible, key=lambda r: (busy[r], queues[r][0].created_at, queues[r][0].id))
            run = queues[repo].popleft()
            secret = secrets.token_urlsafe(32)
            if self.runs.claim_in(
                conn,
                run,
                global_limit=global_limit,
                repo_limit=configs[repo].limits.max_parallel_runs,
                busy_global=lingering_total,
                busy_repo=lingering.get(repo, 0),
                # The report secret's hash is stored with the claim, before any runner could report.
                # The claim names this worker: if it dies before the runner exists, another requeues the run.
                values={"runner": backends[repo].name, "secret_hash": secret_hash(secret),
                        "worker_id": self.services.worker_id},
            ):
                taken.append((run, repo, secret))
                busy[repo] += 1
                room[repo] -= 1
                global_room -= 1
            elif self.runs.state_in(conn, run.id) == run.state:
                # Not taken by someone else, so another worker reached a limit first: recount (the run itself
                # waits for the next pass).
                on_runner = self.runs.on_runner_in(conn)
                global_room = global_limit - on_runner.total - lingering_total
                busy[repo] = on_runner.by_repo.get(repo, 0) + lingering.get(repo, 0)
                room[repo] = configs[repo].limits.max_parallel_runs - busy[repo]
            if room[repo] <= 0 or not queues[repo]:
                eligible.discard(repo)
        return taken

    async def _startable_config(self, repo: str, queue: deque[Run]) -> RepoConfig | None:
        """The repository's config if its runs may start now; otherwise hold (or fail) its runs and return None."""
        try:
            config = await self._config_for(queue[0].installation_id, repo)
        except ConfigError as exc:
            reason = messages.RUN_CONFIG_INVALID.format(problems="; ".join(exc.messages()[:3]))
            for run in queue:
                await self.fail_unstarted(run, reason)
            return None
        except (NotFound, PermissionDenied) as exc:
            # The repository is gone, or the App no longer reaches it: nothing will start there.
            for run in queue:
                await self.fail_unstarted(run, messages.RUN_START_FAILED.format(error=str(exc)))
            return None
        except GitHubError as exc:
            log.warning("cannot read the config of %s, its runs wait: %s", repo, exc)
            return None
        open_prs = await self._open_prs(repo)
        if open_prs >= config.limits.max_open_prs:
            # A fan-out's judge run opens no pull request: review capacity does not hold it.
            judges = [run for run in queue if run.kind == JUDGE_KIND]
            await self._hold(deque(run for run in queue if run.kind != JUDGE_KIND),
                             messages.RUN_WAITING_FOR_REVIEW.format(open=open_prs, limit=config.limits.max_open_prs))
            queue.clear()
            queue.extend(judges)
            if not judges:
                return None
        daily = config.limits.daily_cost_usd
        if daily is not None:
            midnight = utc_midnight(self.services.clock())
            spent = await self.runs.cost_since(repo, midnight)
            if spent >= daily:
                resets = midnight + timedelta(days=1)
                await self._hold(queue, messages.RUN_WAITING_FOR_BUDGET.format(
                    spent=f"${spent:,.2f}", limit=f"${daily:,.2f}", resets=resets.strftime("%Y-%m-%d")))
                return None
        return config

    async def _hold(self, queue: deque[Run], reason: str) -> None:
        """The repository's runs wait (`waiting`), saying why; the next pass looks again."""
        for run in queue:
            if run.state == RunState.QUEUED:
                await self.runs.transition(run.id, RunState.WAITING, reason, from_state=RunState.QUEUED)
            else:
                await self.runs.explain_wait(run.id, reason)

    def _backend_for(self, config: RepoConfig) -> RunnerBackend | None:
        return self.backends.get(config.runner or self.services.settings.runner)

    async def fail_unstarted(self, run: Run, reason: str) -> None:
        """End a run that cannot start; it passes through `starting`, as the lifecycle wants."""
        if await self.runs.transition(run.id, RunState.STARTING, from_state=run.state):
            await self.runs.move(run.id, RunState.FAILED, reason)
            log.info("run %s cannot start: %s", run.id, reason)
