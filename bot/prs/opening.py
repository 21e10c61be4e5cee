"""Delivering succeeded runs: Kickoff (not the runner) opens one pull request per run, with the App's token.

`PullRequestOpener.process()` is the worker's pull-request loop (bot.worker): it runs whenever a run reaches `succeeded`
(`services.runs_succeeded`) and at every tick. The run itself is the durable record (`succeeded` with progress
`finished`), so a run that succeeded before a crash is delivered after the restart. It takes each succeeded run not
yet delivered (one worker wins each, see `bot.store.pulls`) and:

- a new run (or a follow-up on a person's pull request): reserves its `pull_requests` row, opens the pull request
  (adopting the head branch's open pull request when there is one: an earlier attempt's, whose worker died after
  `POST /pulls`; and the one GitHub says already exists, should one appear in between), then labels it, requests
  a review, creates the `agent-run` check, comments a research report's summary on the issue and, once the
  trigger's last pull request is out, updates the sibling links of the earlier ones (one edit each, not one per
  sibling). The body opens with the reviewer brief; the row keeps what it was rendered from and the digest of the
  body written, so `bot.prs.brief.refresh_brief` edits it again only when CI or the ranking changed the text;
- a follow-up or fix on a Kickoff pull request: comments on that pull request and puts an `agent-run` check on its
  new head (it pushed to the same branch; no new pull request).

GitHub refusing the pull request ends the run `failed` with GitHub's reason. A transient failure (rate limit,
5xx) gives the run back for the next pass. Everything after the pull request exists is best effort.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from bot import messages
from bot.config import ConfigError, RepoConfig
from bot.github import (
    GitHubAPI,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    PullRequestInfo,
    RateLimited,
    ValidationFailed,
)
from bot.prs import brief, texts
from bot.runs.snapshot import Snapshot, SnapshotError
from bot.runspec import RunResult
from bot.services import Services
from bot.store.lifecycle import branch_problem
from bot.store.models import JUDGE_KIND, PullRequest, Run, Trigger
from bot.store.pulls import OPEN, OPENING, PullRequestStore
from bot.store.runs import RunStore

log = logging.getLogger(__name__)

ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]


@dataclass(frozen=True, slots=True)
class Opened:
    """A pull request Kickoff has just opened and decorated, for whoever keeps facts about pull requests (the
    review queue seeds its webhook-fed facts with it: `bot.queue.facts.FactStore.seed_opened`), so nothing asks
    GitHub again what Kickoff was just told."""

    repository: str
    pull: PullRequestInfo  # GitHub's answer to `POST /pulls` (or the adopted pull request)
    labels: tuple[str, ...] | None  # the labels Kickoff added; None when adding them failed
    files: tuple[str, ...]  # the files the run changed: the pull request's own on `head_sha`
    head_sha: str | None  # the commit the run pushed (the files are of that commit)
    fresh: bool  # opened just now by this call; False: adopted from an earlier attempt


OpenedHook = Callable[[Opened], Awaitable[None]]
BATCH: Final = 50
ALREADY_EXISTS: Final = "already exists"


@dataclass(frozen=True, slots=True)
class _Where:
    installation_id: int
    owner: str
    repo: str

    @classmethod
    def of(cls, run: Run) -> _Where:
        owner, _, repo = run.repository.partition("/")
        return cls(run.installation_id, owner, repo)


def reason_of(exc: GitHubError) -> str:
    """GitHub's words for a refusal, without our request line."""
    status = f"{exc.status} " if exc.status is not None else ""
    text = str(exc)
    if exc.method and exc.path and text.startswith(f"{exc.method} {exc.path}: "):
        text = text[len(f"{exc.method} {exc.path}: "):]
    return text if text.startswith(status) else status + text


def is_transient(exc: GitHubError) -> bool:
    return isinstance(exc, RateLimited | GitHubUnavailable) or exc.status is None


class PullRequestOpener:
    """Opens the pull requests of succeeded runs and reports follow-ups on theirs."""

    def __init__(
        self, services: Services, runs: RunStore | None = None, *, config_for: ConfigLookup | None = None,
        on_opened: OpenedHook | None = None,
    ) -> None:
        self.services = services
        self._on_opened = on_opened
        self.runs = runs or RunStore(services.store, clock=services.clock)
        self.pulls = PullRequestStore(
            services.store, clock=services.clock,
            worker_timeout=timedelta(seconds=services.settings.workers.timeout_seconds),
        )
        self._config_for = config_for or services.configs.load

    async def process(self, limit: int = BATCH) -> int:
        """Deliver what is waiting; how many runs were delivered (or failed delivering) in this pass."""
        if self.services.github is None:
            return 0
        done = 0
        for run in await self.pulls.undelivered(limit):
            if not await self.pulls.claim(run, self.services.worker_id):
                continue
            try:
                await self.deliver(run)
                done += 1
            except GitHubError as exc:
                log.warning("run %s: delivering its result failed, trying again later: %s", run.id, exc)
                await self.pulls.unclaim(run.id)
            except Exception:
                log.exception("run %s: delivering its result failed", run.id)
                await self.pulls.unclaim(run.id)
        if done:
            self.services.runs_changed.set()
        return done

    async def _config(self, run: Run) -> RepoConfig:
        try:
            return await self._config_for(run.installation_id, run.repository)
        except ConfigError as exc:
            log.info("config of %s is broken, opening run %s's pull request with defaults: %s", run.repository,
                     run.id, "; ".join(exc.messages()[:3]))
            return RepoConfig()

    async def deliver(self, run: Run) -> None:
        if run.kind == JUDGE_KIND:  # a fan-out's judge pushed nothing; its answer is the ranking (bot.runs.ranking)
            await self.pulls.delivered(run.id)
            return
        result = RunResult.model_validate_json(run.result) if run.result else None
        if result is not None and branch_problem(run, result) is not None:
            # Never a pull request from a branch Kickoff did not assign (a stored result from before the check).
            log.warning("run %s: its result names another branch than the run's; no pull request", run.id)
            await self.pulls.delivered(run.id)
            return
        if result is None or not result.pushed or not run.branch:
            log.warning("run %s succeeded without pushing a branch; there is no pull request to open", run.id)
            await self.pulls.delivered(run.id)
            return
        config = await self._config(run)
        trigger = await self.runs.trigger(run.trigger_id)
        if run.kind != "new" and run.pr_number is not None:
            target = await self.pulls.by_number(run.repository, run.pr_number)
            if target is not None and target.run_id is not None and target.head_ref == run.branch:
                await self._followup_pushed(run, result, target)
                return
        await self._open(run, result, config, trigger)

    async def _open(self, run: Run, result: RunResult, config: RepoConfig, trigger: Trigger | None) -> None:
        github = self.services.require_github()
        where = _Where.of(run)
        head = run.branch or ""  # the run's own branch; branch_problem vouched that the result names no other
        followup_of = run.pr_number if run.kind != "new" else None
        base = run.base_branch or ""
        if not base:
            base = (await github.get_repository(where.installation_id, where.owner, where.repo)).default_branch
        row, mine, fresh = await self.pulls.reserve(run, head_ref=head, base_ref=base,
                                                    worker_id=self.services.worker_id)
        if not mine:
            if row.state != OPENING:
                await self.pulls.delivered(run.id, pr_number=None if followup_of else row.number)
            else:
                await self.pulls.unclaim(run.id)  # another worker is opening it right now
            return
        task = config.task(run.task)
        output = task.output if task is not None else "pr"
        issue_title = await self._issue_title(github, run)
        siblings = [] if trigger is None else [p.number for p in await self.pulls.siblings(trigger.id,
                                                                                            excluding=row.id)]
        parts = texts.BodyParts(
            sender=trigger.sender if trigger else "unknown",
            output=output,
            siblings=siblings,
            close_siblings=config.queue.close_siblings,
            followup_of=(followup_of, base) if followup_of is not None else None,
            report_path=self._report_path(result, config) if output == texts.REPORT_TASK_OUTPUT else None,
            issue_title=issue_title,
            # CI may have concluded on the pushed head already (its checks are kept from webhooks of kickoff/ branches).
            ci=await brief.ci_of_head(self.services, run.repository, result.head_sha),
        )
        draft = texts.opens_as_draft(config, result)
        body = texts.body(run, result, parts)
        title = texts.title(config, run, issue_title)
        # Idempotent by construction: a worker that died after `POST /pulls` left the head's pull request open,
        # and the one taking over adopts it rather than asking GitHub for a second. A new reservation has no
        # earlier attempt to adopt from (and GitHub's "already exists" still leads to adopting).
        existing = [] if fresh else await github.find_pull_requests(where.installation_id, where.owner, where.repo,
                                                                    head=head)
        created = False
        written: str | None = None
        try:
            if existing:
                pull = existing[0]
                log.info("run %s: adopting pull request #%s, already open from %s", run.id, pull.number, head)
            else:
                pull = await github.open_pull_request(
                    where.installation_id, where.owner, where.repo, head=head, base=base, title=title,
                    body=body, draft=draft,
                )
                created = fresh
                written = body
        except GitHubError as exc:
            adopted = await self._adopt(github, where, head, exc) if isinstance(exc, ValidationFailed) else None
            if adopted is None:
                await self.pulls.release(row.id)  # if GitHub did open it after all, the next try adopts it
                if is_transient(exc):
                    raise
                log.info("run %s: GitHub refused its pull request: %s", run.id, exc)
                await self.pulls.fail_delivery(run.id, messages.PR_OPEN_REFUSED.format(error=reason_of(exc)))
                return
            pull = adopted
        labels = tuple(dict.fromkeys([*config.pull_requests.labels, f"agent:{run.agent}"]))
        # Before the row opens (and the queue sees it): what GitHub just said, so the first reconcile reads none
        # of it again; the labels as they will be once added (unknown again should adding them fail).
        await self._seed(Opened(run.repository, pull, labels, result.files_changed, result.head_sha, created), run)
        await self.pulls.opened(row.id, pull)
        # An adopted pull request's body is not known: its first refresh writes the brief.
        await self.pulls.set_body(row.id, digest=brief.digest(written) if written is not None else None,
                                  context=brief.BriefContext.of(parts).to_json())
        if followup_of is None:
            await self.runs.update(run.id, pr_number=pull.number)  # the tracking comment links it from now on
        log.info("run %s opened pull request #%s in %s", run.id, pull.number, run.repository)
        if not await self._decorate(run, result, config, trigger, pull, row, labels) and created:
            await self._seed(Opened(run.repository, pull, None, (), None, created), run)
        if followup_of is not None:
            await self.pulls.delivered(run.id, reason=messages.FOLLOWUP_OPENED.format(number=pull.number,
                                                                                      branch=base))
        else:
            await self.pulls.delivered(run.id, pr_number=pull.number)
        if trigger is not None and siblings:
            await self._update_siblings(trigger, config)

    async def _adopt(
        self, github: GitHubAPI, where: _Where, head: str, exc: ValidationFailed
    ) -> PullRequestInfo | None:
        """The pull request GitHub says already exists for this branch (an earlier attempt opened it)."""
        if ALREADY_EXISTS not in str(exc).lower():
            return None
        found = await github.find_pull_requests(where.installation_id, where.owner, where.repo, head=head)
        return found[0] if found else None

    async def _issue_title(self, github: GitHubAPI, run: Run) -> str:
        """The issue's title as its trigger's snapshot froze it (no read), else as GitHub has it now."""
        stored = await self.runs.snapshot(run.trigger_id)
        if stored is not None:
            try:
                return Snapshot.load(*stored).title
            except SnapshotError:
                pass  # the run would not have started from it; read the title live
        try:
            issue = await github.for_repo(run.installation_id, run.repository).get_issue(run.issue_number)
        except NotFound:
            return ""
        return issue.title

    def _report_path(self, result: RunResult, config: RepoConfig) -> str | None:
        folder = config.pull_requests.research_folder.strip("/") + "/"
        for path in result.files_changed:
            if path.startswith(folder) and path.endswith(".md"):
                return path
        return None

    async def _decorate(
        self, run: Run, result: RunResult, config: RepoConfig, trigger: Trigger | None, pull: PullRequestInfo,
        row: PullRequest, labels: tuple[str, ...],
    ) -> bool:
        """Labels, reviewer, the agent-run check, the research comment: each best effort once the PR exists.
        Whether the labels were added."""
        github = self.services.require_github()
        where = _Where.of(run)
        sender = trigger.sender if trigger else None
        if (config.pull_requests.request_review and sender and not sender.lower().endswith("[bot]")
                and sender.lower() != pull.author.lower()):
            await self._try("request a review", github.request_reviewers(
                where.installation_id, where.owner, where.repo, pull.number, [sender]))
        labelled = await self._try("label", github.add_labels(where.installation_id, where.owner, where.repo,
                                                              pull.number, labels))
        await self._check(run, result, row.id, pull.head_sha)
        if result.report and (task := config.task(run.task)) is not None and task.output == texts.REPORT_TASK_OUTPUT:
            path = self._report_path(result, config) or config.pull_requests.research_folder
            await self._try("comment the report", github.comment(
                where.installation_id, where.owner, where.repo, run.issue_number,
                texts.research_comment(run, result, pull.number, path)))
        return labelled

    async def _seed(self, opened: Opened, run: Run) -> None:
        if self._on_opened is None:
            return
        try:
            await self._on_opened(opened)
        except Exception:
            log.exception("run %s: keeping the facts of pull request #%s failed", run.id, opened.pull.number)

    async def _check(self, run: Run, result: RunResult, row_id: int, head_sha: str | None) -> None:
        sha = result.head_sha or head_sha
        if not sha:
            return
        github = self.services.require_github()
        where = _Where.of(run)
        check = texts.agent_check(run, result)
        try:
            check_id = await github.create_check_run(
                where.installation_id, where.owner, where.repo, name=messages.AGENT_CHECK_NAME, head_sha=sha,
                conclusion=check.conclusion, title=check.title, summary=check.summary, actions=check.actions,
                external_id=f"kickoff-run:{run.id}",
            )
        except GitHubError as exc:
            log.warning("run %s: could not create its agent-run check: %s", run.id, exc)
            return
        await self.pulls.set_check(row_id, check_id, sha)

    async def _try(self, what: str, call: Awaitable[None] | Awaitable[int]) -> bool:
        try:
            await call
        except GitHubError as exc:
            log.warning("could not %s: %s", what, exc)
            return False
        return True

    async def _update_siblings(self, trigger: Trigger, config: RepoConfig) -> None:
        """Once no run of the trigger is still on its way to a pull request, give every earlier one the full list
        of its siblings: one edit per pull request, instead of one per pull request per sibling."""
        if await self.pulls.active_runs_of_trigger(trigger.id):
            return
        rows = await self.pulls.siblings(trigger.id)
        runs = await self.pulls.runs_of([r.run_id for r in rows if r.run_id is not None])
        github = self.services.require_github()
        for row in rows[:-1]:  # the newest was opened with the full list
            if row.brief_context is not None:
                # A fan-out is ranked once all of it is open (bot.runs.ranking), and the worker then refreshes
                # every sibling's brief, links included: one edit each then, not one now and one then.
                continue
            run = runs.get(row.run_id or 0)
            if run is None or not run.result:
                continue
            # Opened before the brief was kept: rendered from the config as it is now.
            result = RunResult.model_validate_json(run.result)
            task = config.task(run.task)
            output = task.output if task is not None else "pr"
            parts = texts.BodyParts(
                sender=trigger.sender, output=output, siblings=[r.number for r in rows if r.id != row.id],
                close_siblings=config.queue.close_siblings,
                followup_of=(run.pr_number, row.base_ref) if run.kind != "new" and run.pr_number else None,
                report_path=self._report_path(result, config) if output == texts.REPORT_TASK_OUTPUT else None,
            )
            where = _Where.of(run)
            await self._try("update a sibling's body", github.update_pull_request(
                where.installation_id, where.owner, where.repo, row.number, body=texts.body(run, result, parts)))

    async def _followup_pushed(self, run: Run, result: RunResult, target: PullRequest) -> None:
        github = self.services.require_github()
        where = _Where.of(run)
        sha = (result.head_sha or "")[:7] or "new commits"
        text = messages.FOLLOWUP_DONE.format(agent=texts.one_line(run.agent, 64), run=run.id, sha=sha,
                                             summary=texts.safe(result.summary, texts.SUMMARY_CHARS))
        already = target.agent_check_run_id is not None and target.head_sha == result.head_sha
        if target.state == OPEN and not already:
            await self._check(run, result, target.id, result.head_sha)
        await github.comment(where.installation_id, where.owner, where.repo, target.number,
                             messages.with_marker(text.strip(), messages.PR_MARKER.format(run=run.id)))
        await self.pulls.delivered(run.id)
