"""Events that can move a review queue, the `review-queue` check's buttons, and the queue's `/agent` verbs.

Every handler first keeps what the payload says of the pull request in the queue's stored facts (`bot.queue.facts`:
the pull request and its labels, a review, a check run, a commit status), then finds the queues (repository + base
branch) the event touches and reconciles each once, focused on the pull requests the event was about: the others'
facts come from the database. Deliveries that Kickoff's own check writes cause (`check_run` and `check_suite` of its
App) are ignored, so a reconcile never triggers another. Human pull requests join when labelled `kickoff:queue`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from bot import messages
from bot.events import (
    CheckApp,
    CheckRunEvent,
    CheckSuiteEvent,
    InstallationRef,
    PullNumber,
    PushEvent,
    Repository,
    User,
)
from bot.features import Features
from bot.gate import Sender, Verdict
from bot.github import PullRequestInfo
from bot.github.models import PullReview
from bot.handlers.verbs import CommandContext, CommandRouter
from bot.prs.brief import refresh_fan_out, refresh_heads
from bot.queue.heads import HeadCI
from bot.queue.model import QUEUE_LABEL
from bot.queue.requests import QUEUE_VERBS, Request, apply, show_repository
from bot.queue.service import AGENT_CHECK
from bot.queue.store import OPEN, QueueKey, memory_of
from bot.routing import Event, Router
from bot.runs.ranking import Ranker
from bot.runs.spec_builder import BRANCH_PREFIX
from bot.triggers import post_reply, refusal, site_of

log = logging.getLogger(__name__)
router: Router[Features] = Router()
commands = CommandRouter()

BUTTON_VERBS = {"bump": messages.QUEUE_BUTTON_BUMP[0], "unqueue": messages.QUEUE_BUTTON_REMOVE[0]}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Name(_Model):
    name: str


class _Repo(_Model):
    full_name: str


class _Branch(_Model):
    ref: str
    sha: str | None = None
    repo: _Repo | None = None


class _Pull(_Model):
    number: int
    state: str = "open"
    draft: bool | None = False
    merged: bool | None = None
    merged_at: datetime | None = None
    mergeable: bool | None = None
    html_url: str = ""
    updated_at: datetime | None = None
    title: str = ""
    user: User | None = None
    head: _Branch
    base: _Branch
    labels: list[_Name] | None = None

    def info(self) -> PullRequestInfo | None:
        """The pull request as the queue keeps it (None without a head commit)."""
        if self.head.sha is None:
            return None
        return PullRequestInfo(
            number=self.number, state=self.state, merged=bool(self.merged) or self.merged_at is not None,
            draft=bool(self.draft), title=self.title, author=self.user.login if self.user else "ghost",
            head_ref=self.head.ref, head_sha=self.head.sha,
            head_repo=self.head.repo.full_name if self.head.repo else None, base_ref=self.base.ref,
            mergeable=self.mergeable, html_url=self.html_url,
        )


class _From(_Model):
    previous: str | None = Field(default=None, alias="from")


class _BaseChange(_Model):
    ref: _From | None = None


class _Changes(_Model):
    base: _BaseChange | None = None


class PullRequestEvent(_Model):
    action: str
    pull_request: _Pull
    changes: _Changes | None = None
    repository: Repository
    installation: InstallationRef | None = None


class _Review(_Model):
    id: int
    state: str
    user: User | None = None


class _ReviewPull(_Model):
    number: int


class ReviewEvent(_Model):
    action: str
    review: _Review
    pull_request: _ReviewPull
    repository: Repository
    installation: InstallationRef | None = None


class _Status(_Model):
    id: int = -1
    sha: str
    state: str
    context: str = ""
    branches: list[_Name] = []
    repository: Repository
    installation: InstallationRef | None = None


class _IssueRef(_Model):
    number: int
    labels: list[_Name] = []
    updated_at: datetime | None = None
    pull_request: dict[str, object] | None = None


class LabelEvent(_Model):
    action: str
    issue: _IssueRef
    repository: Repository
    installation: InstallationRef | None = None


def _installation(event: Event, installation: InstallationRef | None) -> int | None:
    return event.installation_id or (installation.id if installation is not None else None)


def _own(services: Features, app: CheckApp | None) -> bool:
    return app is not None and services.settings.app_id is not None and app.id == services.settings.app_id


async def _reconcile(services: Features, keys: set[QueueKey], focus: set[int] | None = None) -> None:
    """Each queue the delivery touched, once; focused on the pull requests it was about (None: read them all)."""
    for key in sorted(keys, key=lambda k: (k.repository, k.base)):
        await services.queue.reconcile(key, focus=focus)


async def _queues_of_head(
    services: Features, installation_id: int, repository: str, sha: str, pulls: list[PullNumber]
) -> tuple[set[QueueKey], set[int]]:
    """The queues of the pull requests GitHub names, and of those whose head is `sha`; and those pull requests."""
    store = services.queue.store
    rows = [row for pull in pulls if (row := await store.get(repository, pull.number)) is not None]
    rows += await store.by_head(repository, sha)
    open_rows = [row for row in rows if row.state == OPEN]
    return ({QueueKey(installation_id, repository, row.base_ref) for row in open_rows},
            {row.number for row in open_rows})


@router.on(
    "pull_request.opened", "pull_request.synchronize", "pull_request.closed", "pull_request.reopened",
    "pull_request.labeled", "pull_request.unlabeled", "pull_request.ready_for_review",
    "pull_request.converted_to_draft", "pull_request.edited",
)
async def pull_request_changed(event: Event, services: Features) -> None:
    payload = event.parse(PullRequestEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None:
        return
    pull, repository = payload.pull_request, payload.repository.full_name
    store = services.queue.store
    row = await store.get(repository, pull.number)
    if row is None:
        labelled = QUEUE_LABEL in {label.name.lower() for label in pull.labels or []}
        if not labelled or pull.state != OPEN or pull.head.sha is None:
            return
        await store.add_human(
            installation_id=installation_id, repository=repository, number=pull.number, title=pull.title,
            author=pull.user.login if pull.user else "ghost", head_ref=pull.head.ref, head_sha=pull.head.sha,
            base_ref=pull.base.ref, draft=bool(pull.draft),
        )
    elif payload.action == "reopened" and row.state != OPEN:
        await store.update(row.id, state=OPEN, closed_at=None)
    info = pull.info()
    if info is not None:
        labels = [label.name for label in pull.labels] if pull.labels is not None else None
        await services.queue.facts.observe_pull(repository, info, labels, pull.updated_at)
        if payload.action == "synchronize" and row is not None:
            await services.queue.facts.observe_new_head(repository, info.head_sha)
    keys = {QueueKey(installation_id, repository, pull.base.ref)}
    previous = payload.changes.base.ref.previous if payload.changes and payload.changes.base and \
        payload.changes.base.ref else None
    if previous:
        keys.add(QueueKey(installation_id, repository, previous))
    if row is not None and row.base_ref != pull.base.ref:
        keys.add(QueueKey(installation_id, repository, row.base_ref))
    await _reconcile(services, keys, {pull.number})


@router.on("issues.labeled", "issues.unlabeled")
async def pull_request_labels(event: Event, services: Features) -> None:
    """A label on a pull request, as an issue event: its whole label set is kept (GitHub may send either)."""
    payload = event.parse(LabelEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or payload.issue.pull_request is None:
        return
    repository = payload.repository.full_name
    row = await services.queue.store.get(repository, payload.issue.number)
    if row is None or row.state != OPEN:
        return
    await services.queue.facts.observe_labels(repository, row.number, [label.name for label in payload.issue.labels],
                                              payload.issue.updated_at)
    await _reconcile(services, {QueueKey(installation_id, repository, row.base_ref)}, {row.number})


@router.on("pull_request_review.submitted", "pull_request_review.dismissed", "pull_request_review.edited")
async def review_changed(event: Event, services: Features) -> None:
    payload = event.parse(ReviewEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None:
        return
    repository = payload.repository.full_name
    row = await services.queue.store.get(repository, payload.pull_request.number)
    if row is None:
        return
    review = payload.review
    author = review.user.login if review.user is not None else "ghost"
    await services.queue.facts.observe_review(repository, row.number, PullReview(review.id, author, review.state))
    await _reconcile(services, {QueueKey(installation_id, row.repository, row.base_ref)}, {row.number})


@router.on("check_run.created", "check_run.completed")
async def check_run_changed(event: Event, services: Features) -> None:
    """A check run started or finished: kept on its commit; a start reconciles only where it takes a `success`
    away (elsewhere it changes nothing the checks show until it finishes)."""
    payload = event.parse(CheckRunEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or _own(services, payload.check_run.app) or payload.check_run.name == AGENT_CHECK:
        return
    run = payload.check_run
    repository = payload.repository.full_name
    keys, numbers = await _queues_of_head(services, installation_id, repository, run.head_sha, run.pull_requests)
    branch = run.check_suite.head_branch if run.check_suite is not None else None
    if not keys and not _kickoff_branch(branch):
        return  # no open entry has this head (yet): its checks are read when one does
    app_id = run.app.id if run.app is not None else None
    await services.queue.facts.observe_check_run(
        repository, run.head_sha, run.id, (run.name, run.status or "queued", run.conclusion, app_id)
    )
    if not keys:
        return  # a run's branch before its pull request is open: kept for it (`FactStore.seed_opened`)
    if payload.action == "created" and run.status != "completed" and not await _shows_success(services, repository,
                                                                                              numbers):
        return
    await _reconcile(services, keys, numbers)
    await rerank_heads(services, repository, run.head_sha)
    if run.status == "completed":
        await _ci_concluded(services, repository, numbers)


async def _ci_concluded(services: Features, repository: str, numbers: set[int]) -> None:
    """A check or status concluded on these pull requests' heads: their reviewer briefs say what CI says now (an
    edit only where the text changed)."""
    if numbers:
        await refresh_heads(services, services.require_github(), repository, numbers)


async def rerank_heads(services: Features, repository: str, sha: str) -> int:
    """CI reported on `sha`: re-rank the published fan-outs of the open pull requests with that head (bot.runs.
    ranking writes only a changed ranking; the tracker then edits the tracking comment). How many changed."""
    triggers = {row.trigger_id for row in await services.pulls.open_with_head(repository, sha)
                if row.trigger_id is not None and row.rank is not None}
    if not triggers:
        return 0
    ranker = Ranker(services, services.runs, ci=HeadCI(services.queue.facts, services.settings.app_id))
    changed = 0
    for trigger_id in sorted(triggers):
        if await ranker.rerank(trigger_id) is not None:
            changed += 1
            # Each sibling's brief says where it stands now (an edit only where its text changed).
            await refresh_fan_out(services, services.require_github(), trigger_id)
    if changed:
        services.runs_changed.set()  # this process's tracker, if it has one, edits at once
    return changed


def _kickoff_branch(name: str | None) -> bool:
    """A branch Kickoff's runs push (`kickoff/<issue>-…`): the checks of its commits are kept before its pull
    request exists, so the queue need not read them when it does."""
    return name is not None and name.startswith(BRANCH_PREFIX)


async def _shows_success(services: Features, repository: str, numbers: set[int]) -> bool:
    """Whether one of these pull requests' `review-queue` check is a success now."""
    for number in numbers:
        row = await services.queue.store.get(repository, number)
        check = memory_of(row).check if row is not None else None
        if check is not None and check.conclusion == "success":
            return True
    return False


@router.on("check_suite.completed")
async def check_suite_completed(event: Event, services: Features) -> None:
    payload = event.parse(CheckSuiteEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or _own(services, payload.check_suite.app):
        return
    suite = payload.check_suite
    keys, numbers = await _queues_of_head(services, installation_id, payload.repository.full_name, suite.head_sha,
                                          suite.pull_requests)
    await _reconcile(services, keys, numbers)
    await rerank_heads(services, payload.repository.full_name, suite.head_sha)
    await _ci_concluded(services, payload.repository.full_name, numbers)


@router.on("status")
async def status_changed(event: Event, services: Features) -> None:
    payload = event.parse(_Status)
    installation_id = _installation(event, payload.installation)
    if installation_id is None:
        return
    repository = payload.repository.full_name
    keys, numbers = await _queues_of_head(services, installation_id, repository, payload.sha, [])
    if not keys and not any(_kickoff_branch(branch.name) for branch in payload.branches):
        return
    await services.queue.facts.observe_status(repository, payload.sha, payload.context, payload.state, payload.id)
    if not keys:
        return  # a run's branch before its pull request is open: kept for it (`FactStore.seed_opened`)
    await _reconcile(services, keys, numbers)
    await rerank_heads(services, repository, payload.sha)
    if payload.state != "pending":
        await _ci_concluded(services, repository, numbers)


@router.on("push")
async def base_pushed(event: Event, services: Features) -> None:
    """A base branch moved: its queue's head must be brought up to date (and the checks say so)."""
    payload = event.parse(PushEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or not payload.ref.startswith("refs/heads/"):
        return
    branch = payload.ref.removeprefix("refs/heads/")
    repository = payload.repository.full_name
    if branch in await services.queue.store.bases(repository):
        await services.queue.reconcile(QueueKey(installation_id, repository, branch), base_moved=True)


@router.on("check_run.requested_action")
async def queue_button_pressed(event: Event, services: Features) -> None:
    """"Move to front" and "Remove" on the `review-queue` check: `/agent bump` and `/agent unqueue`, gated alike."""
    payload = event.parse(CheckRunEvent)
    action = payload.requested_action
    if action is None or action.identifier not in BUTTON_VERBS:
        return
    if payload.check_run.app is not None and services.settings.app_id is not None and not _own(
        services, payload.check_run.app
    ):
        return
    service = services.queue
    repository = payload.repository.full_name
    numbers = [pull.number for pull in payload.check_run.pull_requests]
    if not numbers:
        numbers = [row.number for row in await service.store.by_head(repository, payload.check_run.head_sha)]
    row = None
    for number in numbers:
        row = await service.store.get(repository, number)
        if row is not None and row.queue_check_run_id == payload.check_run.id:
            break
    if row is None:
        return
    site = site_of(event, payload.repository, payload.installation, row.number, is_pull_request=True)
    if site is None:
        return
    sender = Sender(payload.sender.login, payload.sender.type)
    config = await services.triggers.config_for(event, site, sender)
    if config is None or payload.check_run.name != config.queue.check_name:
        return
    verb = action.identifier
    decision = await services.triggers.gate(site, config, sender, verb)
    if decision.verdict is Verdict.IGNORE:
        return
    if not decision.allowed:
        what = messages.WHAT_BUTTON.format(label=BUTTON_VERBS[verb], check=config.queue.check_name)
        await post_reply(services.require_github(), event, site, refusal(decision, sender, what))
        return
    request = Request(verb, site.installation_id, repository, row.number, sender.login, config)
    log.info("%s#%s: %s pressed by %s", repository, row.number, BUTTON_VERBS[verb], sender.login)
    await apply(service, request)


@commands.verb(*QUEUE_VERBS)
async def queue_command(ctx: CommandContext) -> None:
    """Every queue command: on a pull request, its queue; `/agent queue` on an issue shows every queue. One
    comment answers each command."""
    service = ctx.services.queue
    name = ctx.command.verb
    if not ctx.is_pull_request:
        if name == "queue":
            body = await show_repository(service, ctx.installation_id, ctx.repository)
        else:
            body = messages.QUEUE_NOT_A_PULL_REQUEST.format(verb=name)
    else:
        request = Request(
            verb=name,
            installation_id=ctx.installation_id,
            repository=ctx.repository,
            number=ctx.issue_number,
            sender=ctx.sender,
            config=ctx.config,
            priority=ctx.command.priority,
        )
        body = await apply(service, request)
    await post_reply(ctx.services.require_github(), ctx.event, ctx.site, body, seq=ctx.seq)
