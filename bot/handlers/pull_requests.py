"""Kickoff's pull requests on GitHub: their state, their siblings, red CI and conflicts, the `agent-run` buttons.

- `pull_request.*` keeps `pull_requests.state`, `head_sha`, `draft` and `title` current (the queue relies on them);
  a merge supersedes the siblings, a close without merge deletes the branch, a synchronize that conflicts plans
  a fix;
- `check_run.completed`, `check_suite.completed` and `status` failing on a Kickoff pull request's head plan a fix
  run, and a `push` to a base branch looks for the Kickoff pull requests it made conflict (`bot.prs.fixes`);
- `check_run.requested_action` on the `agent-run` check: Retry and Cancel, through the permission gate with the
  person who clicked, then exactly what `/agent retry` and `/agent cancel` do on that pull request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot import messages
from bot.config import RepoConfig
from bot.events import (
    CheckApp,
    CheckRunEvent,
    CheckSuiteEvent,
    InstallationRef,
    PullNumber,
    PullRequestEvent,
    PushEvent,
    StatusEvent,
)
from bot.events import Repository as RepositoryModel
from bot.features import Features
from bot.gate import Sender, Verdict
from bot.handlers import run_commands
from bot.handlers.verbs import CommandContext
from bot.prs import fixes, siblings
from bot.routing import Event, Router
from bot.slash_commands import Command
from bot.store.models import PullRequest
from bot.store.pulls import CLOSED, MERGED, OPEN
from bot.triggers import Site, post_reply, refusal, site_of

log = logging.getLogger(__name__)
router: Router[Features] = Router()

FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
FAILED_STATUSES = frozenset({"failure", "error"})
BUTTONS = {
    messages.AGENT_CHECK_RETRY[2]: (run_commands.retry_runs, messages.AGENT_CHECK_RETRY[0]),
    messages.AGENT_CHECK_CANCEL[2]: (run_commands.cancel_runs, messages.AGENT_CHECK_CANCEL[0]),
}
EXTERNAL_ID_PREFIX = "kickoff-run:"


def _own_app(services: Features, app: CheckApp | None) -> bool:
    return app is not None and services.settings.app_id is not None and app.id == services.settings.app_id


async def _config(services: Features, site: Site) -> RepoConfig:
    """The repository's config; its defaults when the file is broken (these events answer no person)."""
    return await services.configs.load_or_defaults(site.installation_id, site.repository)


def _site(event: Event, repository: RepositoryModel, installation: InstallationRef | None,
          number: int) -> Site | None:
    return site_of(event, repository, installation, number, is_pull_request=True)


@router.on(
    "pull_request.reopened", "pull_request.synchronize", "pull_request.edited", "pull_request.converted_to_draft",
    "pull_request.ready_for_review",
)
async def pull_request_changed(event: Event, services: Features) -> None:
    payload = event.parse(PullRequestEvent)
    pull = payload.pull_request
    row = await services.pulls.track(
        payload.repository.full_name, pull.number, state=OPEN if payload.action == "reopened" else None,
        head_sha=pull.head.sha, draft=bool(pull.draft), title=pull.title,
    )
    if payload.action == "reopened" and row is not None:
        services.runs_changed.set()
    if payload.action == "synchronize" and row is not None and row.run_id is not None and pull.mergeable is False:
        await _conflicted(event, services, payload.repository, payload.installation, row, seq=0)


@router.on("pull_request.closed")
async def pull_request_closed(event: Event, services: Features) -> None:
    payload = event.parse(PullRequestEvent)
    pull = payload.pull_request
    merged = bool(pull.merged)
    before = await services.pulls.by_number(payload.repository.full_name, pull.number)
    row = await services.pulls.track(payload.repository.full_name, pull.number, state=MERGED if merged else CLOSED,
                                       head_sha=pull.head.sha)
    if row is None or row.run_id is None:
        return
    services.runs_changed.set()  # review capacity freed
    site = _site(event, payload.repository, payload.installation, pull.number)
    if site is None:
        return
    github = services.require_github()
    if merged:
        await siblings.close_superseded(services, github, row, await _config(services, site))
    elif before is not None and before.state == CLOSED:
        return  # closed by Kickoff (superseded: its branch is gone already), or this delivery came twice
    elif pull.head.repo is None or pull.head.repo.full_name.lower() == row.repository.lower():
        await siblings.delete_branch(github, row)


async def _failing_head(
    event: Event, services: Features, repository: RepositoryModel, installation: InstallationRef | None, sha: str,
    numbers: Sequence[PullNumber], name: str,
) -> None:
    pulls = services.pulls
    rows: list[PullRequest] = []
    for ref in numbers:
        row = await pulls.by_number(repository.full_name, ref.number)
        if row is not None:
            rows.append(row)
    if not numbers:
        rows = await pulls.open_with_head(repository.full_name, sha)
    for row in rows:
        if row.run_id is None or row.state != OPEN or row.head_sha != sha:
            continue  # not Kickoff's, or an older head: the newer one's checks decide
        site = _site(event, repository, installation, row.number)
        if site is None:
            return
        config = await _config(services, site)
        if name in fixes.own_checks(config):
            continue
        await fixes.consider_fix(services, services.triggers, services.require_github(), event, site, row, config,
                                 fixes.Failure.check(name), seq=row.number)


async def _conflicted(
    event: Event, services: Features, repository: RepositoryModel, installation: InstallationRef | None,
    row: PullRequest, *, seq: int,
) -> None:
    site = _site(event, repository, installation, row.number)
    if site is None:
        return
    config = await _config(services, site)
    await fixes.consider_fix(services, services.triggers, services.require_github(), event, site, row, config,
                             fixes.Failure.conflict(row.base_ref), seq=seq)


@router.on("check_run.completed")
async def check_run_failed(event: Event, services: Features) -> None:
    payload = event.parse(CheckRunEvent)
    run = payload.check_run
    if run.conclusion not in FAILED_CONCLUSIONS or _own_app(services, run.app):
        return
    await _failing_head(event, services, payload.repository, payload.installation, run.head_sha, run.pull_requests,
                        run.name)


@router.on("check_suite.completed")
async def check_suite_failed(event: Event, services: Features) -> None:
    payload = event.parse(CheckSuiteEvent)
    suite = payload.check_suite
    if suite.conclusion not in FAILED_CONCLUSIONS or _own_app(services, suite.app):
        return
    name = suite.app.slug if suite.app is not None and suite.app.slug else "CI"
    await _failing_head(event, services, payload.repository, payload.installation, suite.head_sha,
                        suite.pull_requests, name)


@router.on("status")
async def status_failed(event: Event, services: Features) -> None:
    payload = event.parse(StatusEvent)
    if payload.state not in FAILED_STATUSES:
        return
    await _failing_head(event, services, payload.repository, payload.installation, payload.sha, [],
                        payload.context or "status")


@router.on("push")
async def base_branch_moved(event: Event, services: Features) -> None:
    """A base branch moved: the Kickoff pull requests into it that now conflict get a fix run."""
    payload = event.parse(PushEvent)
    if payload.deleted or not payload.ref.startswith("refs/heads/"):
        return
    branch = payload.ref.removeprefix("refs/heads/")
    rows = await services.pulls.open_on_base(payload.repository.full_name, branch)
    if not rows:
        return
    github = services.require_github()
    owner, repo = payload.repository.owner.login, payload.repository.name
    for row in rows:
        pull = await github.get_pull_request(row.installation_id, owner, repo, row.number)
        if pull.mergeable is False and pull.state == OPEN:
            await _conflicted(event, services, payload.repository, payload.installation, row, seq=row.number)


async def _button_pull_request(services: Features, payload: CheckRunEvent) -> int | None:
    """The pull request an `agent-run` check belongs to: its run's, else the one GitHub names."""
    external = payload.check_run.external_id or ""
    if external.startswith(EXTERNAL_ID_PREFIX) and external[len(EXTERNAL_ID_PREFIX):].isdigit():
        run_id = int(external[len(EXTERNAL_ID_PREFIX):])
        row = await services.pulls.for_run(run_id)
        if row is not None and row.number > 0:
            return row.number
        run = await services.runs.get(run_id)
        if run is not None and run.pr_number is not None and run.repository == payload.repository.full_name:
            return run.pr_number
    numbers = [pull.number for pull in payload.check_run.pull_requests]
    return numbers[0] if numbers else None


@router.on("check_run.requested_action")
async def agent_check_button(event: Event, services: Features) -> None:
    payload = event.parse(CheckRunEvent)
    action = payload.requested_action
    if payload.check_run.name != messages.AGENT_CHECK_NAME or action is None or action.identifier not in BUTTONS:
        return
    if payload.check_run.app is not None and services.settings.app_id is not None and not _own_app(
        services, payload.check_run.app
    ):
        return
    number = await _button_pull_request(services, payload)
    if number is None:
        return
    site = _site(event, payload.repository, payload.installation, number)
    if site is None:
        return
    sender = Sender(payload.sender.login, payload.sender.type)
    config = await services.triggers.config_for(event, site, sender)
    if config is None:
        return
    verb = action.identifier
    handler, label = BUTTONS[verb]
    decision = await services.triggers.gate(site, config, sender, verb)
    if decision.verdict is Verdict.IGNORE:
        return
    if not decision.allowed:
        await post_reply(services.require_github(), event, site,
                         refusal(decision, sender, messages.PR_WHAT_BUTTON.format(label=label)))
        return
    await handler(CommandContext(
        services=services, event=event, command=Command(verb=verb, line=1, source=f"/agent {verb}"), config=config,
        site=site, sender=sender.login, sender_permission=decision.held or "none", comment_id=None, seq=0,
    ))
