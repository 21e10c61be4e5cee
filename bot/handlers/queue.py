"""Events that can move a review queue, the `review-queue` check's buttons, and the queue's `/agent` verbs.

Every handler finds the queues (repository + base branch) an event touches and reconciles each once. Deliveries
that Kickoff's own check writes cause (`check_run` and `check_suite` of its App) are ignored, so a reconcile never
triggers another. Human pull requests join when labelled `kickoff:queue`.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from bot import messages
from bot.events import (
    CheckApp,
    CheckRunEvent,
    CheckSuiteEvent,
    InstallationRef,
    PullNumber,
    PullRequestReviewEvent,
    PushEvent,
    Repository,
    StatusEvent,
    User,
)
from bot.features import Features
from bot.gate import Sender, Verdict
from bot.handlers.verbs import CommandContext, CommandRouter
from bot.queue.model import QUEUE_LABEL
from bot.queue.requests import QUEUE_VERBS, Request, apply, show_repository
from bot.queue.service import AGENT_CHECK
from bot.queue.store import OPEN, QueueKey
from bot.routing import Event, Router
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
    draft: bool = False
    title: str = ""
    user: User | None = None
    head: _Branch
    base: _Branch
    labels: list[_Name] = []


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


def _installation(event: Event, installation: InstallationRef | None) -> int | None:
    return event.installation_id or (installation.id if installation is not None else None)


def _own(services: Features, app: CheckApp | None) -> bool:
    return app is not None and services.settings.app_id is not None and app.id == services.settings.app_id


async def _reconcile(services: Features, keys: set[QueueKey]) -> None:
    """Each queue the delivery touched, once."""
    if keys:
        await services.queue.reconcile_all(sorted(keys, key=lambda k: (k.repository, k.base)))


async def _queues_of_head(
    services: Features, installation_id: int, repository: str, sha: str, pulls: list[PullNumber]
) -> set[QueueKey]:
    """The queues of the pull requests GitHub names, and of those whose head is `sha`."""
    store = services.queue.store
    rows = [row for pull in pulls if (row := await store.get(repository, pull.number)) is not None]
    rows += await store.by_head(repository, sha)
    return {QueueKey(installation_id, repository, row.base_ref) for row in rows if row.state == OPEN}


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
        labelled = QUEUE_LABEL in {label.name.lower() for label in pull.labels}
        if not labelled or pull.state != OPEN or pull.head.sha is None:
            return
        await store.add_human(
            installation_id=installation_id, repository=repository, number=pull.number, title=pull.title,
            author=pull.user.login if pull.user else "ghost", head_ref=pull.head.ref, head_sha=pull.head.sha,
            base_ref=pull.base.ref, draft=pull.draft,
        )
    elif payload.action == "reopened" and row.state != OPEN:
        await store.update(row.id, state=OPEN, closed_at=None)
    keys = {QueueKey(installation_id, repository, pull.base.ref)}
    previous = payload.changes.base.ref.previous if payload.changes and payload.changes.base and \
        payload.changes.base.ref else None
    if previous:
        keys.add(QueueKey(installation_id, repository, previous))
    if row is not None and row.base_ref != pull.base.ref:
        keys.add(QueueKey(installation_id, repository, row.base_ref))
    await _reconcile(services, keys)


@router.on("pull_request_review.submitted", "pull_request_review.dismissed")
async def review_changed(event: Event, services: Features) -> None:
    payload = event.parse(PullRequestReviewEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None:
        return
    row = await services.queue.store.get(payload.repository.full_name, payload.pull_request.number)
    if row is not None:
        await _reconcile(services, {QueueKey(installation_id, row.repository, row.base_ref)})


@router.on("check_run.completed")
async def check_run_completed(event: Event, services: Features) -> None:
    payload = event.parse(CheckRunEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or _own(services, payload.check_run.app) or payload.check_run.name == AGENT_CHECK:
        return
    run = payload.check_run
    keys = await _queues_of_head(services, installation_id, payload.repository.full_name, run.head_sha,
                                 run.pull_requests)
    await _reconcile(services, keys)


@router.on("check_suite.completed")
async def check_suite_completed(event: Event, services: Features) -> None:
    payload = event.parse(CheckSuiteEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None or _own(services, payload.check_suite.app):
        return
    suite = payload.check_suite
    keys = await _queues_of_head(services, installation_id, payload.repository.full_name, suite.head_sha,
                                 suite.pull_requests)
    await _reconcile(services, keys)


@router.on("status")
async def status_changed(event: Event, services: Features) -> None:
    payload = event.parse(StatusEvent)
    installation_id = _installation(event, payload.installation)
    if installation_id is None:
        return
    await _reconcile(services, await _queues_of_head(services, installation_id, payload.repository.full_name,
                                                     payload.sha, []))


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
        await _reconcile(services, {QueueKey(installation_id, repository, branch)})


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
