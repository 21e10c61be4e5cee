"""Following runners: starting a claimed run on its backend, settling it when its runner exits, stopping the runners
of runs that ended elsewhere, and at start-up recovering the runs a previous process left on a runner.

A run's token (one repository, contents:write; a judge run's contents:read) is minted when it starts, recorded
sealed (`bot.runs.tokens`), and revoked when its runner exits, when recovery ends the run, or by the sweep.

A run from `starting` on is held by the worker that claimed it (`runs.worker_id`). Recovery runs at start-up and at
every scheduling pass, and takes over the runs of dead workers (bot.store.workers): a `starting` run that never got
a runner goes back to `queued` (at most `MAX_REQUEUES` times, then it fails saying so); a run whose runner this
worker can reach is re-attached when the runner still lives, finished from what it left behind (a runner that
reported goes on to its pull request), or failed as "runner lost". At start-up the runs no worker holds (claimed
by an older version) are taken over the same way. The sweep (`sweep`, at start-up and every
`KICKOFF_RUNNER_SWEEP_SECONDS`) removes the runners and workspaces no live run holds and revokes the tokens of ended
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Final

from bot import messages
from bot.config import ConfigError, RepoConfig
from bot.github import GitHubError, InstallationToken
from bot.logs import forget_run_secrets, register_secret
from bot.runs.backend import RunnerBackend, RunnerError, RunnerExit
from bot.runs.spec_builder import Unstartable
from bot.runs.tokens import RunTokens
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunSpec
from bot.services import Services
from bot.store.lifecycle import MAX_REQUEUES, is_final
from bot.store.models import JUDGE_KIND, Run, RunState
from bot.store.runs import RunStore

log = logging.getLogger(__name__)

ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
SpecFor = Callable[[Run, RepoConfig], Awaitable[RunSpec]]

SHUTDOWN_GRACE: Final = 5.0
RUN_TOKEN_PERMISSIONS: Final = {"contents": "write"}
JUDGE_TOKEN_PERMISSIONS: Final = {"contents": "read"}
"""A judge run only reads the attempts' branches: its token cannot push."""


def describe(exc: BaseException) -> str:
    """A start failure as users may read it: our own messages, never a raw exception's text."""
    if isinstance(exc, Unstartable):
        return str(exc)
    if isinstance(exc, GitHubError | RunnerError):
        return messages.RUN_START_FAILED.format(error=str(exc))
    if isinstance(exc, ConfigError):
        return messages.RUN_CONFIG_INVALID.format(problems="; ".join(exc.messages()[:3]))
    return messages.RUN_START_FAILED.format(error=f"internal error ({type(exc).__name__}); see Kickoff's log")


class RunnerFollower:
    """Holds what this process knows of its live runners: their tokens, repositories and timeouts."""

    def __init__(
        self,
        services: Services,
        runs: RunStore,
        backends: Mapping[str, RunnerBackend],
        *,
        spec_for: SpecFor,
        config_for: ConfigLookup,
        run_deadline: Callable[[int], float],
    ) -> None:
        self.services = services
        self.runs = runs
        self.backends = backends
        self._spec_for = spec_for
        self._config_for = config_for
        self._run_deadline = run_deadline
        self.tokens = RunTokens(services)
        self._repo_of: dict[int, str] = {}
        self._timeouts: dict[int, int] = {}
        self._stopping: set[int] = set()
        self._token_of: dict[int, int] = {}  # run id -> the recorded token this process minted for its runner
        self._tasks: set[asyncio.Task[None]] = set()
        for backend in self.backends.values():
            backend.bind(self.on_exit)

    async def aclose(self) -> None:
        """Let runners being stopped finish stopping (briefly), then stop watching the rest."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for backend in self.backends.values():
            await backend.aclose()

    async def start(self, run: Run, config: RepoConfig, backend: RunnerBackend, secret: str) -> None:
        """Start a claimed run: its spec, its token, its runner; a failure ends the run `failed`, saying why."""
        token: InstallationToken | None = None
        recorded: int | None = None
        try:
            spec = await self._spec_for(run, config)
            # Written before any runner exists, so a report always finds the branch it must name.
            await self.runs.update(run.id, branch=spec.branch, base_branch=spec.base_branch)
            github = self.services.require_github()
            # Its row first, so even a kill between GitHub's answer and the record leaves a trace (bot.runs.tokens).
            recorded = await self.tokens.intend(run.id)
            self._token_of[run.id] = recorded
            try:
                token = await github.mint_run_token(
                    run.installation_id, run.repository.partition("/")[2],
                    JUDGE_TOKEN_PERMISSIONS if run.kind == JUDGE_KIND else RUN_TOKEN_PERMISSIONS)
            except BaseException:
                self._token_of.pop(run.id, None)
                await self.tokens.forget(recorded)  # no token was made
                recorded = None
                raise
            register_secret(token.token, run_id=run.id)
            # Recorded before any runner can hold it, so whoever ends the run (here or elsewhere) can revoke it.
            if not await self.tokens.record(recorded, run.id, token):
                recorded = None
                raise RunnerError(messages.RUN_ENDED_WHILE_STARTING)  # revoked below: nobody else can
            self._repo_of[run.id] = run.repository
            self._timeouts[run.id] = spec.timeout_seconds
            ref = await backend.start(
                spec, {ENV_GIT_TOKEN: token.token, ENV_RUN_SECRET: secret},
                deadline=self._run_deadline(spec.timeout_seconds),
            )
            if not await self.runs.attach_runner(run.id, ref, run.worker_id):
                now = await self.runs.get(run.id)
                if now is not None and is_final(now.state) and self._holds(now):
                    # A quick runner reported its end before its ref was written: its exit settles the rest here.
                    log.info("run %s ended before its runner's ref was recorded", run.id)
                    return
                # Taken from this worker meanwhile (thought dead, it was requeued or failed): one runner per run.
                log.warning("run %s was taken over while its runner started; stopping that runner", run.id)
                await self._revoke_own(run.id)  # this start's token; the run's new start keeps its own
                self._stopping.add(run.id)
                self._spawn(self._stop(backend, run.id), f"stop-run-{run.id}")
        except Exception as exc:
            reason = describe(exc)
            if not isinstance(exc, Unstartable | GitHubError | RunnerError | ConfigError):
                log.exception("run %s could not start", run.id)
            else:
                log.warning("run %s could not start: %s", run.id, reason)
            self._repo_of.pop(run.id, None)
            self._timeouts.pop(run.id, None)
            # Only while this worker still holds it: a run taken over meanwhile is its new holder's to end.
            await self.runs.move(run.id, RunState.FAILED, reason, holder=run.worker_id)
            self._token_of.pop(run.id, None)
            if recorded is not None:
                await self.tokens.revoke_one(recorded)  # the token in its row, or the row of a failed mint
            elif token is not None:
                await self._revoke(token)
            self.services.runs_changed.set()

    async def reconcile(self) -> dict[str, int]:
        """Stop runners whose run ended elsewhere; count the runners still alive for ended runs, per repository."""
        live = {run_id: backend for backend in self.backends.values() for run_id in backend.running()}
        if not live:
            return {}
        states = await self.runs.states(list(live))
        lingering: dict[str, int] = defaultdict(int)
        for run_id, backend in live.items():
            state, progress = states.get(run_id, (None, None))
            if state is not None and not is_final(state):
                continue
            lingering[self._repo_of.get(run_id, "")] += 1
            # A runner that reported its result exits by itself; any other runner of an ended run is stopped.
            if progress not in ("finished", "delivering", "delivered") and run_id not in self._stopping:
                self._stopping.add(run_id)
                self._spawn(self._stop(backend, run_id), f"stop-run-{run_id}")
        return lingering

    async def _stop(self, backend: RunnerBackend, run_id: int) -> None:
        try:
            log.info("run %s ended; stopping its runner", run_id)
            await backend.cancel(run_id)
        finally:
            self._stopping.discard(run_id)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def wrapped() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.create_task(wrapped(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_exit(self, exit_: RunnerExit) -> None:
        """A runner ended: settle its run if its report did not, and give back its token."""
        self._repo_of.pop(exit_.run_id, None)
        timeout = self._timeouts.pop(exit_.run_id, None)
        mine = True
        try:
            run = await self.runs.get(exit_.run_id)
            if run is not None and not self._holds(run):
                mine = False  # taken over by another worker: only this runner's own token is revoked
                return
            if run is None or run.state not in (RunState.STARTING, RunState.RUNNING):
                return  # ended elsewhere, or back in the queue (its token, if any, is the dead start's)
            if exit_.cancelled:
                await self.runs.move(run.id, RunState.CANCELLED, messages.RUN_CANCELLED)
            elif exit_.timed_out:
                minutes = max(1, round((timeout or 0) / 60))
                await self.runs.move(run.id, RunState.TIMED_OUT, messages.RUN_TIMED_OUT.format(minutes=minutes))
            elif exit_.result is not None:
                await self.runs.finish(run.id, exit_.result)
            elif exit_.exit_code is None:
                await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_EXITED_UNKNOWN)
            else:
                await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_EXITED.format(code=exit_.exit_code))
            if exit_.exit_code not in (0, None) and exit_.log_tail:
                log.warning("run %s: the runner's last output:\n%s", run.id, exit_.log_tail[-1500:])
        finally:
            forget_run_secrets(exit_.run_id)  # it may have ended elsewhere; its runner is gone now
            if mine:
                self._token_of.pop(exit_.run_id, None)
                await self._revoke_run(exit_.run_id)
            else:
                await self._revoke_own(exit_.run_id)
            self.services.runs_changed.set()

    async def _revoke_run(self, run_id: int) -> None:
        try:
            await self.tokens.revoke(run_id)
        except Exception:
            log.exception("run %s: revoking its token failed; the sweep tries again", run_id)

    async def _revoke_own(self, run_id: int) -> None:
        """Revoke the token this process minted for its runner of `run_id` (none known: nothing to do)."""
        token_id = self._token_of.pop(run_id, None)
        if token_id is None:
            return
        try:
            await self.tokens.revoke_one(token_id)
        except Exception:
            log.exception("run %s: revoking its token failed; the sweep tries again", run_id)

    async def _revoke(self, token: InstallationToken) -> None:
        if self.services.github is None:
            return
        try:
            await self.services.github.revoke_token(token)
        except GitHubError as exc:
            log.info("could not revoke a run token (it expires within the hour): %s", exc)

    def _holds(self, run: Run) -> bool:
        """Whether this worker holds `run`: no other live worker took it over (a run no worker names is anyone's)."""
        me = self.services.worker_id
        return run.worker_id is None or me is None or run.worker_id == me

    async def recover(self, *, startup: bool = False) -> int:
        """Take over the runs of dead workers (at `startup` also those no worker holds): requeue the unstarted,
        re-attach, collect or fail the rest; how many runs were taken over."""
        cutoff = self.services.clock() - timedelta(seconds=self.services.settings.workers.timeout_seconds)
        taken = 0
        for run in await self.runs.orphaned(cutoff, unowned=startup):
            if self.services.worker_id is not None and run.worker_id == self.services.worker_id:
                continue  # this very worker, declared dead while it lived: its own loops still follow it
            if await self._take_over(run):
                taken += 1
        if startup:
            await self.sweep()  # what no live run holds: runners, workspaces, the tokens of ended runs
        if taken or startup:
            self.services.runs_changed.set()
        return taken

    async def _take_over(self, run: Run) -> bool:
        ref = run.runner_ref
        if ref is None:
            ref = await self._unrecorded_runner(run)
        if ref is None:
            if run.state == RunState.STARTING:
                # Its worker died before any runner existed: nothing ran, so the run may simply start again.
                moved = await self.runs.requeue_unstarted(
                    run, reason=messages.RUN_REQUEUED, cap=MAX_REQUEUES,
                    give_up=messages.RUN_REQUEUE_LIMIT.format(times=MAX_REQUEUES),
                )
                if moved is not None:
                    await self._revoke_run(run.id)  # minted before the worker died, if it got that far
                    log.warning("run %s: its worker died before starting its runner; %s", run.id,
                                "queued again" if moved == RunState.QUEUED else "failed, requeued too often")
                return moved is not None
            if not await self.runs.adopt(run, self.services.worker_id):
                return False
            await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_LOST)
            await self._revoke_run(run.id)
            return True
        backend = self.backends.get(run.runner or "")
        if backend is None or not backend.owns(ref):
            return False  # another host's runner (or a backend not offered here): a worker there takes it over
        if run.id in backend.running():
            return await self.runs.adopt(run, self.services.worker_id)  # already followed here
        if not await self.runs.adopt(run, self.services.worker_id):
            return False
        if run.runner_ref is None:
            await self.runs.update(run.id, runner_ref=ref)  # what the dead starter could not record
        config = await self._config_or_default(run)
        elapsed = (self.services.clock() - (run.started_at or run.created_at)).total_seconds()
        deadline = max(1.0, self._run_deadline(config.limits.run_timeout_minutes * 60) - elapsed)
        if await backend.follow(run.id, ref, deadline=deadline):
            self._repo_of[run.id] = run.repository
            self._timeouts[run.id] = config.limits.run_timeout_minutes * 60
            log.info("run %s: following its runner, taken over from a stopped worker", run.id)
            return True
        result = await backend.collect(run.id, ref)
        if result is not None:
            await self.runs.finish(run.id, result)  # a succeeded run goes on to its pull request
        else:
            await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_LOST)
        log.info("run %s: its runner was gone when taken over (%s)", run.id,
                 "result collected" if result else "runner lost")
        await self._revoke_run(run.id)
        await backend.cleanup(run.id, ref)
        return True

    async def _unrecorded_runner(self, run: Run) -> str | None:
        """A runner the dead worker started for `run` but died before recording (it may already have reported, so
        the run can be `running`): found by its backend, so it is followed or collected, never lost or doubled."""
        backend = self.backends.get(run.runner or "")
        if backend is None:
            return None
        try:
            ref = await backend.find(run.id)
        except Exception:
            log.exception("run %s: looking for its unrecorded runner failed", run.id)
            return None
        if ref is not None:
            log.info("run %s: found the runner its dead worker started but never recorded (%s)", run.id, ref)
        return ref

    async def sweep(self) -> list[str]:
        """What no live run holds, removed: each backend's runners and workspaces (see its `sweep`), then the tokens
        of ended runs revoked. At start-up after recovery, and every `KICKOFF_RUNNER_SWEEP_SECONDS`; the refs
        removed. Composes across workers: a backend decides "held" from the run's state in the database and, for
        local runners, from the liveness of the process that started the runner."""
        removed: list[str] = []
        for name, backend in self.backends.items():
            try:
                removed += await backend.sweep({run.id for run in await self.runs.held_by(name)})
            except Exception:
                log.exception("sweeping the %s runners failed; trying again at the next sweep", name)
        try:
            await self.tokens.revoke_ended()
        except Exception:
            log.exception("revoking the tokens of ended runs failed; trying again at the next sweep")
        return removed

    async def _config_or_default(self, run: Run) -> RepoConfig:
        try:
            return await self._config_for(run.installation_id, run.repository)
        except (ConfigError, GitHubError):
            return RepoConfig()
