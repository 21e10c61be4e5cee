"""The scheduler: starts queued runs on runners within the limits, fairly across repositories, and follows them.

One loop per process (`kickoff serve` and `kickoff worker`), woken by `services.runs_changed` and by a periodic
tick. Each pass:

1. stops runners whose run was ended elsewhere (a cancel, a timeout);
2. holds back the runs of repositories at review capacity (`limits.max_open_prs` Kickoff PRs awaiting review):
   they go to `waiting`, with the reason, which the tracking comment shows;
3. claims runs, oldest first but round-robin by repository (the repository with the fewest runs on runners goes
   next), within `KICKOFF_MAX_PARALLEL_RUNS` and the repository's `limits.max_parallel_runs`. A claim is one
   guarded UPDATE that re-checks the limits, so several schedulers never start a run twice nor exceed a limit;
4. starts the claimed runs: per-run token (one repository, contents:write), per-run report secret (only its
   sha256 is stored), the spec, the backend;
5. edits the tracking comments that changed (coalesced, see `bot.runs.tracking`).

At start-up it recovers the runs a previous process left on a runner: re-attached when the runner still lives,
finished from what it left behind, or failed as "runner lost".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import messages
from bot.config import ConfigError, OperatorPolicy, RepoConfig, TaskSpec
from bot.github import GitHubError, InstallationToken, NotFound, PermissionDenied, PullRequestInfo
from bot.logs import forget_run_secrets, register_secret
from bot.prs import followups
from bot.prs.opening import Deliverer
from bot.runners.base import RunnerBackend, RunnerError, RunnerExit
from bot.runners.watchdog import RemoteRunner
from bot.runs.lifecycle import is_final
from bot.runs.snapshot import IssueText, Snapshot, SnapshotError, Trust, issue_text
from bot.runs.spec import ENV_GIT_TOKEN, ENV_RUN_SECRET, AgentCommand, CommitIdentity, RunSpec
from bot.runs.store import RunStore, secret_hash
from bot.runs.tracking import Tracker
from bot.services import Services
from bot.store.models import Run, RunState, Trigger
from bot.untrusted import clean_untrusted, fence_untrusted, slugify

log = logging.getLogger(__name__)

T = TypeVar("T")
ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
"""`(installation_id, "owner/name") → RepoConfig`: the repository's config from its default branch."""
OpenPullRequests = Callable[[str], Awaitable[int]]
"""`"owner/name" → how many Kickoff pull requests await review there`."""

SHUTDOWN_GRACE: Final = 5.0
RUN_TOKEN_PERMISSIONS: Final = {"contents": "write"}
# A claimed run still without a runner after this long was being started by a process that died.
LOST_AFTER: Final = timedelta(minutes=2)


class SchedulerSettings(BaseSettings):
    """The scheduler's and the local runner's process settings (env or `.env`), built at start-up."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    tick_seconds: float = Field(default=5.0, gt=0, validation_alias="KICKOFF_SCHEDULER_TICK_SECONDS")
    tracking_interval_seconds: float = Field(default=3.0, ge=0, validation_alias="KICKOFF_TRACKING_INTERVAL_SECONDS")
    config_ttl_seconds: float = Field(default=30.0, ge=0, validation_alias="KICKOFF_CONFIG_TTL_SECONDS")
    keep_workspaces: bool = Field(default=False, validation_alias="KICKOFF_KEEP_WORKSPACES")
    workspace_dir: Path | None = Field(default=None, validation_alias="KICKOFF_WORKSPACE_DIR")
    runner_grace_seconds: float = Field(default=10.0, ge=0, validation_alias="KICKOFF_RUNNER_GRACE_SECONDS")
    timeout_margin_seconds: float = Field(default=60.0, ge=0, validation_alias="KICKOFF_RUN_TIMEOUT_MARGIN_SECONDS")
    clone_url: str | None = Field(
        default=None, validation_alias="KICKOFF_CLONE_URL",
        description="A template with {repo}, e.g. file:///srv/git/{repo}.git; default: derived from GITHUB_API_URL",
    )
    local_runner_command: list[str] | None = Field(default=None, validation_alias="KICKOFF_LOCAL_RUNNER_COMMAND")
    # The local backend's agent sandbox (docs/runners.md, "The sandbox"): the bwrap program, and the one opt-out.
    bwrap: str = Field(default="bwrap", min_length=1, validation_alias="KICKOFF_BWRAP")
    unsafe_no_sandbox: bool = Field(default=False, validation_alias="KICKOFF_UNSAFE_NO_SANDBOX")


def clone_url_for(api_url: str, repository: str) -> str:
    """The git URL of a repository, derived from the API's: github.com, GHES (`/api/v3`) or a sandbox."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc.lower() == "api.github.com":
        return f"https://github.com/{repository}.git"
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}/{repository}.git"


def branch_name(issue_number: int, task: str, agent: str, run_id: int) -> str:
    """`kickoff/<issue>-<task>-<agent>-<run id>`, each part made branch-safe."""
    return f"kickoff/{issue_number}-{slugify(task, fallback='task')}-{slugify(agent, fallback='agent')}-{run_id}"


class _Unstartable(Exception):
    """The run cannot start for a reason users can fix; the message is the run's reason."""


class _Context:
    """What a trigger's runs share: the trigger and what of its issue the agent may read (bot.runs.snapshot)."""

    def __init__(self, trigger: Trigger, text: IssueText) -> None:
        self.trigger = trigger
        self.text = text


def render_prompt(run: Run, task: TaskSpec, context: _Context, report_path: str | None) -> str:
    """The agent's prompt: the task, the requester's instructions, then the issue's text fenced as data.

    Cleaning and fencing are linear but not free (tens of kilobytes of comments): callers run this off the loop.
    """
    trigger, text = context.trigger, context.text
    kind = "pull request" if trigger.is_pull_request else "issue"
    parts = [f"You are working in the GitHub repository {run.repository} on {kind} #{run.issue_number}."]
    parts.append(f"Your task is `{run.task}`" + (f": {task.description}" if task.description else "."))
    if task.prompt:
        parts.append(task.prompt)
    if trigger.instructions.strip():
        parts.append(f"Instructions from @{trigger.sender}, who asked for this run:\n\n"
                     f"{clean_untrusted(trigger.instructions)}")
    if report_path is not None:
        parts.append(f"Write your findings as Markdown to `{report_path}` and change no other file.")
    if not text.author_trusted:
        template = messages.PROMPT_ISSUE_FROZEN if text.frozen else messages.PROMPT_ISSUE_UNFROZEN
        parts.append(template.format(kind=kind, sender=trigger.sender, digest=(text.digest or "")[:16],
                                     author=text.author or "unknown"))
    parts.append(fence_untrusted(f"{kind} #{run.issue_number}", f"# {text.title}\n\n{text.body}"))
    if text.comments:
        joined = "\n\n".join(f"@{author} wrote:\n{body}" for author, body in text.comments)
        parts.append(fence_untrusted(f"comments on {kind} #{run.issue_number}", joined))
    if text.left_out:
        parts.append(messages.PROMPT_COMMENTS_LEFT_OUT.format(count=text.left_out, permission=text.required,
                                                              kind=kind))
    return "\n\n".join(parts)


def _describe(exc: BaseException) -> str:
    """A start failure as users may read it: our own messages, never a raw exception's text."""
    if isinstance(exc, _Unstartable):
        return str(exc)
    if isinstance(exc, GitHubError | RunnerError):
        return messages.RUN_START_FAILED.format(error=str(exc))
    if isinstance(exc, ConfigError):
        return messages.RUN_CONFIG_INVALID.format(problems="; ".join(exc.messages()[:3]))
    return messages.RUN_START_FAILED.format(error=f"internal error ({type(exc).__name__}); see Kickoff's log")


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
    ) -> None:
        if not backends:
            raise ValueError("the scheduler needs at least one runner backend")
        self.services = services
        self.backends = dict(backends)
        self._policy = OperatorPolicy.from_settings(services.settings)
        self.runs = RunStore(services.store, clock=services.clock)
        self.tracker = Tracker(services, self.runs, interval=tracking_interval)
        self.deliverer = Deliverer(services, self.runs, config_for=self._config)  # succeeded runs → pull requests
        self.tick = tick
        self.config_ttl = config_ttl
        self._config_for = config_for or services.configs.load
        self._open_prs = open_prs or self.runs.open_kickoff_prs
        self._clone_url = clone_url or (lambda repo: clone_url_for(services.settings.github_api_url, repo))
        self._run_deadline = run_deadline or (lambda timeout: timeout + timeout_margin)
        self._configs: dict[str, tuple[float, RepoConfig]] = {}
        self._tokens: dict[int, InstallationToken] = {}
        self._repo_of: dict[int, str] = {}
        self._timeouts: dict[int, int] = {}
        self._stopping: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pass: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._identity: CommitIdentity | None = None
        for backend in self.backends.values():
            backend.bind(self._on_exit)

    # ---- The loop -----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Recover, then schedule until `stop` is set. Runners keep running when it stops."""
        log.info("scheduler started (runners: %s)", ", ".join(self.backends))
        try:
            try:
                await self.recover()
            except Exception:
                log.exception("recovering the runs of a previous process failed")
            while not stop.is_set():
                changed = self.services.runs_changed
                changed.clear()
                await self.step()
                timeout = self.tick
                due = self.tracker.due_in()
                if due is not None:
                    timeout = min(timeout, max(due, 0.01))
                await _wait_any(changed, stop, timeout)
        finally:
            await self.aclose()
            log.info("scheduler stopped")

    async def step(self) -> list[int]:
        """One pass: schedule, then update tracking comments; the ids of the runs started."""
        started: list[int] = []
        try:
            started = await self.schedule()
        except Exception:
            log.exception("scheduling failed; trying again at the next tick")
        try:
            await self.deliverer.process()
        except Exception:
            log.exception("opening pull requests failed; trying again at the next tick")
        try:
            await self.tracker.refresh()
        except Exception:
            log.exception("updating tracking comments failed")
        return started

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

    # ---- Scheduling ---------------------------------------------------------------------------------------------

    async def schedule(self) -> list[int]:
        """Claim and start what the limits allow; the ids of the runs started."""
        lingering = await self._reconcile()
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

        claimed: list[tuple[Run, RunnerBackend, str]] = []
        room = {repo: config.limits.max_parallel_runs - busy[repo] for repo, config in configs.items()}
        eligible = {repo for repo in configs if room[repo] > 0}
        while global_room > 0 and eligible:
            # Fair share: the repository with the fewest runs on runners goes next; ties by its oldest run.
            repo = min(eligible, key=lambda r: (busy[r], queues[r][0].created_at, queues[r][0].id))
            run = queues[repo].popleft()
            backend = self._backend_for(configs[repo])
            if backend is None:
                runner = configs[repo].runner or self.services.settings.runner
                await self._fail_unstarted(run, messages.RUN_RUNNER_UNAVAILABLE.format(
                    runner=runner, available=", ".join(sorted(self.backends))))
            elif await self.runs.claim(
                run,
                global_limit=global_limit,
                repo_limit=configs[repo].limits.max_parallel_runs,
                busy_global=lingering_total,
                busy_repo=lingering.get(repo, 0),
                # The report secret's hash is stored with the claim, before any runner could report.
                values={"runner": backend.name, "secret_hash": secret_hash(secret := secrets.token_urlsafe(32))},
            ):
                register_secret(secret, run_id=run.id)
                claimed.append((run, backend, secret))
                busy[repo] += 1
                room[repo] -= 1
                global_room -= 1
            elif await self.runs.state_of(run.id) == run.state:
                # Not taken by someone else, so another worker reached a limit first: recount (the run itself
                # waits for the next pass).
                on_runner = await self.runs.on_runner()
                global_room = global_limit - on_runner.total - lingering_total
                busy[repo] = on_runner.by_repo.get(repo, 0) + lingering.get(repo, 0)
                room[repo] = configs[repo].limits.max_parallel_runs - busy[repo]
            if room[repo] <= 0 or not queues[repo]:
                eligible.discard(repo)

        for repo in configs:
            for run in queues[repo]:
                if run.state == RunState.WAITING:  # review capacity is back, but no runner is free yet
                    await self.runs.explain_wait(run.id, messages.RUN_WAITING_FOR_SLOT)
        try:
            await asyncio.gather(*(
                self._start(run, configs[run.repository], backend, secret) for run, backend, secret in claimed
            ))
        finally:
            self._pass.clear()
        return [run.id for run, _, _ in claimed]

    async def _startable_config(self, repo: str, queue: deque[Run]) -> RepoConfig | None:
        """The repository's config if its runs may start now; otherwise hold (or fail) its runs and return None."""
        try:
            config = await self._config(queue[0].installation_id, repo)
        except ConfigError as exc:
            reason = messages.RUN_CONFIG_INVALID.format(problems="; ".join(exc.messages()[:3]))
            for run in queue:
                await self._fail_unstarted(run, reason)
            return None
        except (NotFound, PermissionDenied) as exc:
            # The repository is gone, or the App no longer reaches it: nothing will start there.
            for run in queue:
                await self._fail_unstarted(run, messages.RUN_START_FAILED.format(error=str(exc)))
            return None
        except GitHubError as exc:
            log.warning("cannot read the config of %s, its runs wait: %s", repo, exc)
            return None
        open_prs = await self._open_prs(repo)
        if open_prs >= config.limits.max_open_prs:
            reason = messages.RUN_WAITING_FOR_REVIEW.format(open=open_prs, limit=config.limits.max_open_prs)
            for run in queue:
                if run.state == RunState.QUEUED:
                    await self.runs.transition(run.id, RunState.WAITING, reason, from_state=RunState.QUEUED)
                else:
                    await self.runs.explain_wait(run.id, reason)
            return None
        return config

    def _backend_for(self, config: RepoConfig) -> RunnerBackend | None:
        return self.backends.get(config.runner or self.services.settings.runner)

    async def _fail_unstarted(self, run: Run, reason: str) -> None:
        """End a run that cannot start; it passes through `starting`, as the lifecycle wants."""
        if await self.runs.transition(run.id, RunState.STARTING, from_state=run.state):
            await self.runs.move(run.id, RunState.FAILED, reason)
            log.info("run %s cannot start: %s", run.id, reason)

    async def _config(self, installation_id: int, repo: str) -> RepoConfig:
        now = asyncio.get_running_loop().time()
        cached = self._configs.get(repo)
        if cached is not None and cached[0] > now:
            return cached[1]
        config = await self._config_for(installation_id, repo)
        self._configs[repo] = (now + self.config_ttl, config)
        return config

    async def _reconcile(self) -> dict[str, int]:
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

    # ---- Starting a run -----------------------------------------------------------------------------------------

    async def _start(self, run: Run, config: RepoConfig, backend: RunnerBackend, secret: str) -> None:
        token: InstallationToken | None = None
        try:
            spec = await self.build_spec(run, config)
            # Written before any runner exists, so a report always finds the branch it must name.
            await self.runs.update(run.id, branch=spec.branch, base_branch=spec.base_branch)
            github = self.services.require_github()
            token = await github.mint_run_token(run.installation_id, run.repository.partition("/")[2],
                                                RUN_TOKEN_PERMISSIONS)
            register_secret(token.token, run_id=run.id)
            self._tokens[run.id] = token
            self._repo_of[run.id] = run.repository
            self._timeouts[run.id] = spec.timeout_seconds
            ref = await backend.start(
                spec, {ENV_GIT_TOKEN: token.token, ENV_RUN_SECRET: secret},
                deadline=self._run_deadline(spec.timeout_seconds),
            )
            await self.runs.update(run.id, runner_ref=ref)
        except Exception as exc:
            reason = _describe(exc)
            if not isinstance(exc, _Unstartable | GitHubError | RunnerError | ConfigError):
                log.exception("run %s could not start", run.id)
            else:
                log.warning("run %s could not start: %s", run.id, reason)
            self._tokens.pop(run.id, None)
            self._repo_of.pop(run.id, None)
            self._timeouts.pop(run.id, None)
            await self.runs.move(run.id, RunState.FAILED, reason)
            if token is not None:
                await self._revoke(token)
            self.services.runs_changed.set()

    async def build_spec(self, run: Run, config: RepoConfig) -> RunSpec:
        """Everything the runner needs to know, and nothing secret."""
        task = config.task(run.task)
        if task is None:
            raise _Unstartable(messages.RUN_TASK_UNKNOWN.format(task=run.task))
        agent = config.agents.get(run.agent)
        if agent is None:
            raise _Unstartable(messages.RUN_AGENT_UNKNOWN.format(agent=run.agent))
        context = await self._once(("trigger", run.trigger_id), lambda: self._trigger_context(run, config))
        checkout: str = "base"
        if run.kind == "followup" and run.pr_number is not None:
            pull = await self._once(("pull", run.repository, run.pr_number), lambda: self._pull_request(run))
            if pull.fork_of(run.repository) is not None:
                raise _Unstartable(messages.RUN_START_FAILED.format(
                    error="the pull request's branch is in a fork, where Kickoff cannot push"))
            target = await followups.target_for(
                self.services, run.repository, run.pr_number, head_ref=pull.head_ref, base_ref=pull.base_ref,
                current=run.branch, new_branch=branch_name(run.issue_number, run.task, run.agent, run.id),
            )
            branch, base, checkout = target.branch, target.base, target.checkout
        else:
            branch = branch_name(run.issue_number, run.task, run.agent, run.id)
            base = run.base_branch or ""
            if not base:
                base = await self._once(("repo", run.repository), lambda: self._default_branch(run))
        report_path = None
        if task.output == "report":
            folder = config.pull_requests.research_folder.strip("/")
            report_path = f"{folder}/{run.issue_number}-{slugify(context.text.title)}.md"
        prompt = await asyncio.to_thread(render_prompt, run, task, context, report_path)
        title = " ".join(clean_untrusted(context.text.title, 200).split())[:72] or f"#{run.issue_number}"
        return RunSpec(
            run_id=run.id,
            repository=run.repository,
            clone_url=self._clone_url(run.repository),
            base_branch=base,
            branch=branch,
            checkout="branch" if checkout == "branch" else "base",
            task=run.task,
            issue_number=run.issue_number,
            # The names were checked against KICKOFF_AGENT_ENV when the config loaded; checked again here, where
            # they become what every backend's runner program copies into the agent's environment.
            agent=AgentCommand(name=run.agent, adapter=agent.adapter, command=agent.command or (),
                               env=tuple(name for name in agent.env if self._policy.allows_env(name)),
                               model=agent.model, network=agent.network),
            prompt=prompt + await self._followup_context(run, config),
            output=task.output,
            report_path=report_path,
            timeout_seconds=config.limits.run_timeout_minutes * 60,
            protected_paths=config.protected_paths,
            max_changed_files=config.limits.max_changed_files,
            verify_command=config.verify.command,
            commit_identity=await self._commit_identity(run.installation_id),
            commit_message=(f"{run.task}: {title} (#{run.issue_number})\n\n"
                            f"Requested-by: @{context.trigger.sender}\nKickoff-Run: {run.id}\n"),
            report_url=f"{self.services.settings.public_url}/api/runs/{run.id}/report",
        )

    async def _followup_context(self, run: Run, config: RepoConfig) -> str:
        """For a follow-up: the pull request's live review comments and failing checks (see bot.prs.followups)."""
        if run.kind != "followup" or run.pr_number is None:
            return ""
        pull = await self._once(("pull", run.repository, run.pr_number), lambda: self._pull_request(run))
        github = self.services.require_github()
        owner, _, name = run.repository.partition("/")
        trust = Trust(github, run.installation_id, owner, name, run.task,
                      min_permission=config.permissions.min_permission,
                      allow_users=frozenset(user.lower() for user in config.permissions.allow_users))
        context = await followups.prompt_context(github, run.installation_id, run.repository, run.pr_number,
                                                 pull.head_sha, trust=trust)
        return f"\n\n{context}" if context else ""

    async def _once(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        """Fetch something the runs of one pass share once, even when they start concurrently."""
        task = self._pass.get(key)
        if task is None:
            task = self._pass[key] = asyncio.ensure_future(fetch())
        result: T = await asyncio.shield(task)
        return result

    async def _trigger_context(self, run: Run, config: RepoConfig) -> _Context:
        github = self.services.require_github()
        trigger = await self.runs.trigger(run.trigger_id)
        if trigger is None:
            raise _Unstartable(messages.RUN_START_FAILED.format(error="its trigger is gone"))
        owner, _, name = run.repository.partition("/")
        stored = await self.runs.snapshot(run.trigger_id)
        snapshot: Snapshot | None = None
        if stored is not None:
            try:
                snapshot = Snapshot.load(*stored)
            except SnapshotError as exc:
                raise _Unstartable(messages.RUN_START_FAILED.format(error=str(exc))) from None
        trust = Trust(github, run.installation_id, owner, name, run.task,
                      min_permission=config.permissions.min_permission,
                      allow_users=frozenset(user.lower() for user in config.permissions.allow_users))
        text = await issue_text(github, trust, run.issue_number, snapshot, stored[1] if stored else None)
        return _Context(trigger, text)

    async def _pull_request(self, run: Run) -> PullRequestInfo:
        assert run.pr_number is not None  # only follow-ups ask
        repo = self.services.require_github().for_repo(run.installation_id, run.repository)
        return await repo.get_pull_request(run.pr_number)

    async def _default_branch(self, run: Run) -> str:
        owner, _, name = run.repository.partition("/")
        repository = await self.services.require_github().get_repository(run.installation_id, owner, name)
        return repository.default_branch

    async def _commit_identity(self, installation_id: int) -> CommitIdentity:
        """The App's bot user (`<slug>[bot]`, with GitHub's noreply address), learnt once per process."""
        if self._identity is not None:
            return self._identity
        github = self.services.require_github()
        try:
            app = await github.get_app()
        except GitHubError as exc:
            log.warning("could not learn the App's slug, committing as kickoff[bot]: %s", exc)
            return CommitIdentity(name="kickoff[bot]", email="kickoff[bot]@users.noreply.github.com")
        login = app.bot_login
        email = f"{login}@users.noreply.github.com"
        try:
            user = await github.get_user(installation_id, login)
            email = f"{user.id}+{login}@users.noreply.github.com"
        except NotFound:
            pass
        except GitHubError as exc:
            log.warning("could not learn the id of %s: %s", login, exc)
            return CommitIdentity(name=login, email=email)
        self._identity = CommitIdentity(name=login, email=email)
        return self._identity

    # ---- Following runs -----------------------------------------------------------------------------------------

    async def _on_exit(self, exit_: RunnerExit) -> None:
        """A runner ended: settle its run if its report did not, and give back its token."""
        token = self._tokens.pop(exit_.run_id, None)
        self._repo_of.pop(exit_.run_id, None)
        timeout = self._timeouts.pop(exit_.run_id, None)
        try:
            run = await self.runs.get(exit_.run_id)
            if run is None or is_final(run.state):
                return
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
            if token is not None:
                await self._revoke(token)
            self.services.runs_changed.set()

    async def _revoke(self, token: InstallationToken) -> None:
        if self.services.github is None:
            return
        try:
            await self.services.github.revoke_token(token)
        except GitHubError as exc:
            log.info("could not revoke a run token (it expires within the hour): %s", exc)

    async def recover(self) -> None:
        """Settle the runs a previous process left on a runner of this host: re-attach, collect, or fail."""
        now = self.services.clock()
        for name, backend in self.backends.items():
            for run in await self.runs.held_by(name):
                if run.id in backend.running():
                    continue
                ref = run.runner_ref
                if ref is None:
                    if now - run.updated_at > LOST_AFTER:
                        await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_LOST)
                    continue
                if not backend.owns(ref):
                    continue  # another host's runner: that host's worker recovers it
                config = await self._config_or_default(run)
                elapsed = (now - (run.started_at or run.created_at)).total_seconds()
                deadline = max(1.0, self._run_deadline(config.limits.run_timeout_minutes * 60) - elapsed)
                if await backend.follow(run.id, ref, deadline=deadline):
                    self._repo_of[run.id] = run.repository
                    self._timeouts[run.id] = config.limits.run_timeout_minutes * 60
                    continue
                result = await backend.collect(run.id, ref)
                if result is not None:
                    await self.runs.finish(run.id, result)
                else:
                    await self.runs.move(run.id, RunState.FAILED, messages.RUN_RUNNER_LOST)
                log.info("run %s: its runner was gone after a restart (%s)", run.id,
                         "result collected" if result else "runner lost")
                await backend.cleanup(run.id, ref)
            if isinstance(backend, RemoteRunner):  # its jobs that no run holds any more are deleted
                await backend.sweep({run.id for run in await self.runs.held_by(name)})
        self.services.runs_changed.set()

    async def _config_or_default(self, run: Run) -> RepoConfig:
        try:
            return await self._config(run.installation_id, run.repository)
        except (ConfigError, GitHubError):
            return RepoConfig()


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            waiters = [asyncio.create_task(event.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()


def build_scheduler(services: Services, settings: SchedulerSettings | None = None) -> Scheduler:
    """The scheduler of `kickoff serve` and `kickoff worker`, with the runner backends the operator enabled.

    The local backend is offered only when `KICKOFF_RUNNERS` (or `KICKOFF_RUNNER`) names it, and only once its
    sandbox is known to work here (or the operator opted out): `SettingsError` otherwise, before anything runs.
    """
    from bot.runners.local import DEFAULT_COMMAND, LocalRunner, check_sandbox, secret_paths
    from bot.runners.registry import remote_backends

    settings = settings or SchedulerSettings()
    backends: dict[str, RunnerBackend] = {}
    if "local" in services.settings.enabled_runners:
        mode = check_sandbox(settings.bwrap, unsafe_no_sandbox=settings.unsafe_no_sandbox)
        local = LocalRunner(
            command=settings.local_runner_command or DEFAULT_COMMAND,
            workspace_root=settings.workspace_dir,
            keep_workspaces=settings.keep_workspaces,
            grace_seconds=settings.runner_grace_seconds,
            sandbox=mode,
            bwrap=settings.bwrap,
            hide=secret_paths(database_url=services.settings.database_url,
                              private_key_path=services.settings.private_key_path),
            agent_env=services.settings.agent_env_names,
        )
        backends[local.name] = local
    backends.update(remote_backends(services))
    template = settings.clone_url
    return Scheduler(
        services,
        backends,
        clone_url=(lambda repo: template.format(repo=repo)) if template else None,
        tick=settings.tick_seconds,
        tracking_interval=settings.tracking_interval_seconds,
        config_ttl=settings.config_ttl_seconds,
        timeout_margin=settings.timeout_margin_seconds,
    )
