"""Building a run's spec: everything its runner needs to know (the prompt, the branches, the agent), nothing secret.

The runs a scheduling pass starts together share what they read from GitHub (the trigger's issue text, a follow-up's
pull request, the default branch) through a per-pass cache, so a fan-out of ten reads the issue once.

A judge run (kind `judge`, bot.runs.ranking) gets the judge's prompt: its instructions and the issue, fenced
(`bot.ranking.judge_prompt_head`), and the attempts (run, branch when it pushed one, the facts line); the runner
reads each attempt's diff from git and appends it before the agent starts. It has no verify command and no
report path, and its branch is never pushed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from bot import messages
from bot.config import OperatorPolicy, RepoConfig, TaskSpec
from bot.github import GitHubError, NotFound, PullRequestInfo
from bot.ranking import attempt_facts, judge_prompt_head
from bot.runs import followups
from bot.runs.ranking import evidence_of, fan_out, result_of
from bot.runs.snapshot import IssueText, Snapshot, SnapshotError, Trust, issue_text
from bot.runspec import AgentCommand, CommitIdentity, JudgeAttempt, JudgeSpec, RunSpec
from bot.services import Services
from bot.store.models import JUDGE_KIND, Run, Trigger
from bot.store.runs import RunStore
from bot.untrusted import clean_untrusted, fence_untrusted, slugify

log = logging.getLogger(__name__)

T = TypeVar("T")


class Unstartable(Exception):
    """The run cannot start for a reason users can fix; the message is the run's reason."""


def clone_url_for(api_url: str, repository: str) -> str:
    """The git URL of a repository, derived from the API's: github.com, GHES (`/api/v3`) or a sandbox."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc.lower() == "api.github.com":
        return f"https://github.com/{repository}.git"
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}/{repository}.git"


LIVE_AFTER: Final = timedelta(minutes=2)
"""A trigger older than this reads its issue's text and comments live for its runs (trusted authors' edits)."""
BRANCH_PREFIX: Final = "kickoff/"
"""Every run's branch starts with it (and no person's should)."""


def branch_name(issue_number: int, task: str, agent: str, run_id: int) -> str:
    """`kickoff/<issue>-<task>-<agent>-<run id>`, each part made branch-safe."""
    return f"{BRANCH_PREFIX}{issue_number}-{slugify(task, fallback='task')}-{slugify(agent, fallback='agent')}-{run_id}"


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


class SpecBuilder:
    """Builds run specs; `clone_url` maps "owner/name" to the URL the runner clones."""

    def __init__(self, services: Services, runs: RunStore, *, clone_url: Callable[[str], str]) -> None:
        self.services = services
        self.runs = runs
        self._clone_url = clone_url
        self._policy = OperatorPolicy.from_settings(services.settings)
        self._pass: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._identity: CommitIdentity | None = None
        self._identity_lock = asyncio.Lock()  # runs that start together learn it with one request, not one each

    def end_pass(self) -> None:
        """Forget what the runs of this pass shared: the next pass reads it afresh."""
        self._pass.clear()

    async def build_spec(self, run: Run, config: RepoConfig) -> RunSpec:
        """Everything the runner needs to know, and nothing secret."""
        task = config.task(run.task)
        if task is None:
            raise Unstartable(messages.RUN_TASK_UNKNOWN.format(task=run.task))
        agent = config.agents.get(run.agent)
        if agent is None:
            raise Unstartable(messages.RUN_AGENT_UNKNOWN.format(agent=run.agent))
        context = await self._once(("trigger", run.trigger_id), lambda: self._trigger_context(run, config))
        checkout: str = "base"
        if run.kind == "followup" and run.pr_number is not None:
            pull = await self._once(("pull", run.repository, run.pr_number), lambda: self._pull_request(run))
            if pull.fork_of(run.repository) is not None:
                raise Unstartable(messages.RUN_START_FAILED.format(
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
        judge: JudgeSpec | None = None
        report_path = None
        if run.kind == JUDGE_KIND:
            branch = branch_name(run.issue_number, run.task, f"judge-{run.agent}", run.id)
            judge, prompt = await self._judge(run, context)
        elif task.output == "report":
            folder = config.pull_requests.research_folder.strip("/")
            report_path = f"{folder}/{run.issue_number}-{slugify(context.text.title)}.md"
        if judge is None:
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
            output=task.output if judge is None else "pr",
            report_path=report_path,
            timeout_seconds=config.limits.run_timeout_minutes * 60,
            idle_timeout_seconds=config.limits.agent_idle_minutes * 60,
            protected_paths=config.protected_paths,
            max_changed_files=config.limits.max_changed_files,
            verify_command=config.verify.command if judge is None else None,
            commit_identity=await self._commit_identity(run.installation_id),
            commit_message=(f"{run.task}: {title} (#{run.issue_number})\n\n"
                            f"Requested-by: @{context.trigger.sender}\nKickoff-Run: {run.id}\n"),
            report_url=f"{self.services.settings.public_url}/api/runs/{run.id}/report",
            max_cost_usd=config.limits.max_cost_usd,
            # Half a change goes to a new draft only: never pushed onto a branch a pull request already shows.
            publish_incomplete=(config.pull_requests.publish_incomplete and task.output == "pr"
                                and checkout == "base" and judge is None),
            judge=judge,
        )

    async def _judge(self, run: Run, context: _Context) -> tuple[JudgeSpec, str]:
        """A judge run's attempts (each one's branch when it pushed one) and the head of its prompt."""
        attempts = fan_out(await self.runs.runs_of_trigger(run.trigger_id))
        if not attempts:
            raise Unstartable(messages.RUN_START_FAILED.format(error="its trigger has no attempts to rank"))
        evidence = [evidence_of(attempt, None) for attempt in attempts]
        judged = []
        for attempt, facts in zip(attempts, evidence, strict=True):
            result = result_of(attempt)
            pushed = attempt.branch if result is not None and result.pushed and attempt.branch else None
            judged.append(JudgeAttempt(run_id=attempt.id, branch=pushed, facts=attempt_facts(facts)))
        issue = f"# {context.text.title}\n\n{context.text.body}"
        prompt = await asyncio.to_thread(judge_prompt_head, issue, evidence, fence_untrusted)
        return JudgeSpec(attempts=tuple(judged)), prompt

    async def _followup_context(self, run: Run, config: RepoConfig) -> str:
        """For a follow-up: the pull request's live review comments and failing checks (see bot.runs.followups)."""
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
            raise Unstartable(messages.RUN_START_FAILED.format(error="its trigger is gone"))
        owner, _, name = run.repository.partition("/")
        stored = await self.runs.snapshot(run.trigger_id)
        snapshot: Snapshot | None = None
        if stored is not None:
            try:
                snapshot = Snapshot.load(*stored)
            except SnapshotError as exc:
                raise Unstartable(messages.RUN_START_FAILED.format(error=str(exc))) from None
        trust = Trust(github, run.installation_id, owner, name, run.task,
                      min_permission=config.permissions.min_permission,
                      allow_users=frozenset(user.lower() for user in config.permissions.allow_users))
        # A run starting within `LIVE_AFTER` of its trigger takes the issue as the snapshot froze it moments ago.
        live = self.services.clock() - trigger.created_at >= LIVE_AFTER
        text = await issue_text(github, trust, run.issue_number, snapshot, stored[1] if stored else None,
                               read_live=live)
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
        """The App's bot user (`<slug>[bot]`, with GitHub's noreply address), learnt once per process (concurrent
        first callers wait for one answer; a failure is not kept, so the next run asks again)."""
        if self._identity is not None:
            return self._identity
        async with self._identity_lock:
            if self._identity is not None:
                return self._identity
            return await self._learn_identity(installation_id)

    async def _learn_identity(self, installation_id: int) -> CommitIdentity:
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
