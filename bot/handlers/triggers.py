"""Agent labels (`agent:<task>`), and what every trigger shares: the repo config, the gate, replies, tracking.

A label or a command becomes runs in three steps: read `.github/kickoff.yml` from the default branch, pass the
permission gate, plan the trigger's rows (`bot.runs.planning`) and post its one tracking comment. Every step is safe
to repeat: the dispatcher retries a delivery that failed half-way, and an operator can replay one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from bot import messages
from bot.config import ConfigError, ConfigLoader, OperatorPolicy, RepoConfig, load_repo_config
from bot.config.model import Permissions
from bot.events import AppInfo, InstallationRef, IssuesEvent, Label
from bot.events import Repository as RepositoryModel
from bot.github import GitHubAPI, GitHubError, NotFound, PermissionDenied
from bot.permissions import Decision, PermissionCache, Reason, Sender, Verdict, authorize, ignored
from bot.routing import Event, Router
from bot.runs.planning import PlannedTrigger, TriggerRequest, find_trigger, plan_trigger, set_tracking_comment
from bot.runs.snapshot import take_snapshot
from bot.services import Services
from bot.untrusted import clean_untrusted

log = logging.getLogger(__name__)
router = Router()

LABEL_PREFIX = "agent:"
_MARKER_KEY = re.compile(r"[^A-Za-z0-9._:-]")


# ---- Per-process state ---------------------------------------------------------------------------------------------


@dataclass
class TriggerState:
    """What the triggers feature keeps per process (per `Services`): config cache, permission cache, own login."""

    loader: ConfigLoader = field(default_factory=ConfigLoader)
    permissions: PermissionCache = field(default_factory=PermissionCache)
    own_login: str | None = None


_STATES: dict[int, TriggerState] = {}


def trigger_state(services: Services) -> TriggerState:
    """The state of this `Services`; it goes away with it, so tests never share caches."""
    key = id(services)
    state = _STATES.get(key)
    if state is None:
        state = _STATES[key] = TriggerState()
        weakref.finalize(services, _STATES.pop, key, None)
    return state


# ---- Where a trigger happened --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    """The issue or pull request a delivery is about, and the installation that can act on it."""

    installation_id: int
    owner: str
    repo: str
    issue_number: int
    is_pull_request: bool
    default_branch: str | None

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def api(self) -> str:
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.repo, safe='')}"


def site_of(
    event: Event,
    repository: RepositoryModel,
    installation: InstallationRef | None,
    issue_number: int,
    *,
    is_pull_request: bool,
) -> Site | None:
    installation_id = event.installation_id or (installation.id if installation else None)
    if installation_id is None:
        log.warning("%s on %s carries no installation; Kickoff cannot act on it", event.key, repository.full_name)
        return None
    return Site(
        installation_id,
        repository.owner.login,
        repository.name,
        issue_number,
        is_pull_request,
        repository.default_branch,
    )


# ---- Config, identity, the gate ------------------------------------------------------------------------------------


async def load_config(services: Services, github: GitHubAPI, site: Site) -> RepoConfig:
    """The repo's `.github/kickoff.yml` from its default branch (never a pull request's head), over the org's."""

    async def fetch(owner: str, repo: str, path: str) -> tuple[str, str] | None:
        home = owner.lower() == site.owner.lower() and repo.lower() == site.repo.lower()
        try:
            found = await github.get_file(
                site.installation_id, owner, repo, path, ref=site.default_branch if home else None
            )
        except (NotFound, PermissionDenied):
            if home:
                raise
            return None  # another repository the installation cannot read: as if it had no file
        return None if found is None else (found.text, found.sha)

    policy = OperatorPolicy.from_settings(services.settings)
    return await load_repo_config(site.owner, site.repo, fetch, loader=trigger_state(services).loader, policy=policy)


async def own_login(services: Services, github: GitHubAPI) -> str | None:
    """The App's bot login (`<slug>[bot]`), asked of GitHub once per process; None when it cannot be learnt."""
    state = trigger_state(services)
    if state.own_login is None and services.settings.app_id is not None:
        try:
            app = await github.request(None, "GET", "/app", model=AppInfo)
        except GitHubError as exc:
            log.warning("could not learn the App's bot login: %s", exc)
            return None
        state.own_login = f"{app.slug}[bot]"
    return state.own_login


async def is_kickoff(services: Services, github: GitHubAPI, sender: Sender) -> bool:
    """Whether the sender is Kickoff's own bot: checked before anything else, so Kickoff never answers itself."""
    if not sender.is_bot:
        return False
    login = await own_login(services, github)
    return login is not None and sender.login.lower() == login.lower()


async def screen_sender(services: Services, sender: Sender, config: RepoConfig) -> bool:
    """Whether a delivery from `sender` is to be considered at all (False: Kickoff itself or a bot nobody allowed)."""
    reason = ignored(sender, config.permissions, own_login=trigger_state(services).own_login)
    if reason is not None:
        log.info("ignoring a delivery from %s (%s)", sender.login, reason.value)
        return False
    return True


async def config_for(
    services: Services, github: GitHubAPI, event: Event, site: Site, sender: Sender
) -> RepoConfig | None:
    """The repo config for a delivery from `sender`, or None when there is nothing to do: the sender is Kickoff
    itself, the config is broken (reported where the user looks, only to a sender who passes the safe default
    gate), or the config screens the sender out."""
    if await is_kickoff(services, github, sender):
        return None
    try:
        config = await load_config(services, github, site)
    except ConfigError as exc:
        if await may_see_config_errors(services, github, site, sender):
            await report_config_error(github, event, site, exc)
        return None
    if not await screen_sender(services, sender, config):
        return None
    return config


SAFE_POLICY = Permissions()
"""The gate when the repository's own policy cannot be read: `write` at least, nobody allowed by name, no bots."""
CONFIG_ERRORS_VERB = "config"
"""Not a read verb, so it needs `min_permission` (write under `SAFE_POLICY`)."""


async def may_see_config_errors(services: Services, github: GitHubAPI, site: Site, sender: Sender) -> bool:
    """Whether a broken config is reported to `sender`: only to those who pass the gate under `SAFE_POLICY`. A
    broken file says nothing about who may trigger, so anyone else (a stranger's comment) gets no reply at all."""
    state = trigger_state(services)
    decision = await authorize(
        github, state.permissions, now=services.clock(), installation_id=site.installation_id, owner=site.owner,
        repo=site.repo, verb=CONFIG_ERRORS_VERB, sender=sender, policy=SAFE_POLICY, own_login=state.own_login,
    )
    if not decision.allowed:
        log.info("config of %s is broken; not reported to %s (%s)", site.repository, sender.login,
                 decision.reason.value)
    return decision.allowed


async def gate(
    services: Services,
    github: GitHubAPI,
    site: Site,
    config: RepoConfig,
    sender: Sender,
    verb: str,
    *,
    fork: str | None = None,
) -> Decision:
    state = trigger_state(services)
    return await authorize(
        github,
        state.permissions,
        now=services.clock(),
        installation_id=site.installation_id,
        owner=site.owner,
        repo=site.repo,
        verb=verb,
        sender=sender,
        policy=config.permissions,
        own_login=state.own_login,
        fork=fork,
    )


def refusal(decision: Decision, sender: Sender, what: str) -> str:
    if decision.reason is Reason.FORK:
        fork = f"`{decision.fork}`" if decision.fork and "/" in decision.fork else (decision.fork or "a fork")
        return messages.REFUSED_FORK.format(what=what, fork=fork)
    return messages.REFUSED_PERMISSION.format(
        login=sender.login, what=what, required=decision.required, held=decision.held or "none"
    )


def known_tasks(config: RepoConfig) -> str:
    return messages.code_list(sorted(config.enabled_tasks()))


def task_descriptions(config: RepoConfig) -> dict[str, str]:
    return {name: spec.description for name, spec in config.enabled_tasks().items()}


# ---- Replies and tracking comments ---------------------------------------------------------------------------------


def marker_key(event: Event) -> str:
    return _MARKER_KEY.sub("", event.delivery_id)[:100]


async def find_own_comment(github: GitHubAPI, site: Site, marker: str) -> int | None:
    """The id of a comment Kickoff posted earlier on this issue that ends with `marker`."""
    for comment in await github.list_issue_comments(site.installation_id, site.owner, site.repo, site.issue_number):
        if comment.author_type == "Bot" and marker in comment.body:
            return comment.id
    return None


async def post_reply(github: GitHubAPI, event: Event, site: Site, body: str) -> None:
    """Answer a delivery with one comment, unless an earlier attempt (a retry, a replay) already answered it."""
    marker = messages.REPLY_MARKER.format(key=marker_key(event))
    if await find_own_comment(github, site, marker) is not None:
        return
    await github.comment(site.installation_id, site.owner, site.repo, site.issue_number,
                         messages.with_marker(body, marker))


async def report_config_error(github: GitHubAPI, event: Event, site: Site, error: ConfigError) -> None:
    log.info("config of %s is broken: %s", site.repository, "; ".join(error.details()))
    await post_reply(github, event, site, messages.config_problems(error.problems))


async def ensure_tracking_comment(services: Services, github: GitHubAPI, site: Site, planned: PlannedTrigger) -> int:
    """Post the trigger's tracking comment unless it exists (also when an interrupted attempt posted it)."""
    if planned.tracking_comment_id is not None:
        return planned.tracking_comment_id
    marker = messages.TRACKING_MARKER.format(trigger_id=planned.trigger_id)
    comment_id = None if planned.created else await find_own_comment(github, site, marker)
    if comment_id is None:
        body = messages.tracking_comment(
            planned.task,
            planned.sender,
            [(run.id, run.agent, run.attempt, run.state) for run in planned.runs],
            planned.trigger_id,
        )
        comment_id = await github.comment(site.installation_id, site.owner, site.repo, site.issue_number, body)
    await set_tracking_comment(services, planned.trigger_id, comment_id)
    return comment_id


async def start_trigger(
    services: Services,
    github: GitHubAPI,
    event: Event,
    site: Site,
    *,
    seq: int,
    source: str,
    task: str,
    agents: Sequence[str],
    attempts: int,
    sender: str,
    instructions: str = "",
    reason: str | None = None,
) -> PlannedTrigger:
    """Plan the trigger's runs (once per delivery and seq) and make sure its tracking comment exists.

    The issue's text and comments are frozen here, with the trigger (bot.runs.snapshot): what is written after this
    moment reaches the agent only from people who may start runs.
    """
    snapshot = None
    instructions = await asyncio.to_thread(clean_untrusted, instructions)  # off the loop; planning keeps it as is
    if await find_trigger(services, event.delivery_id, seq) is None:
        held = None
        if source != "fix":  # a person asked: the gate has just cached their permission
            try:
                held = await trigger_state(services).permissions.get(
                    github, site.installation_id, site.owner, site.repo, sender, now=services.clock())
            except GitHubError:
                held = None
        snapshot = await take_snapshot(github, site.installation_id, site.owner, site.repo, site.issue_number,
                                       event.payload, now=services.clock(), sender=sender, sender_permission=held)
    planned = await plan_trigger(
        services,
        TriggerRequest(
            delivery_id=event.delivery_id,
            seq=seq,
            installation_id=site.installation_id,
            repository=site.repository,
            issue_number=site.issue_number,
            task=task,
            agents=tuple(agents),
            attempts=attempts,
            sender=sender,
            source=source,
            instructions=instructions,
            is_pull_request=site.is_pull_request,
            base_branch=site.default_branch,
            reason=reason,
            snapshot=snapshot,
        ),
    )
    await ensure_tracking_comment(services, github, site, planned)
    return planned


# ---- Labels --------------------------------------------------------------------------------------------------------


def task_of_label(name: str) -> str | None:
    """`agent:fix` → `fix`; None for labels that are not Kickoff's."""
    if not name.lower().startswith(LABEL_PREFIX):
        return None
    return name[len(LABEL_PREFIX) :].strip().lower()


async def _live_labels(github: GitHubAPI, site: Site) -> set[str]:
    path = f"{site.api}/issues/{site.issue_number}/labels"
    return {label.name async for label in github.paginate(site.installation_id, path, model=Label)}


@router.on("issues.labeled")
async def agent_label_added(event: Event, services: Services) -> None:
    payload = event.parse(IssuesEvent)
    if payload.label is None or task_of_label(payload.label.name) is None or payload.issue.is_pull_request:
        return
    await _handle_labels(event, services, payload, [payload.label.name])


@router.on("issues.opened")
async def issue_opened_with_agent_labels(event: Event, services: Services) -> None:
    payload = event.parse(IssuesEvent)
    labels = [label.name for label in payload.issue.labels if task_of_label(label.name) is not None]
    if labels and not payload.issue.is_pull_request:
        await _handle_labels(event, services, payload, labels)


async def _handle_labels(event: Event, services: Services, payload: IssuesEvent, labels: list[str]) -> None:
    """One trigger per agent label (seq = its index); each label is removed once handled so it can be re-applied.

    GitHub sends `issues.labeled` for the labels an issue is opened with as well as `issues.opened`; whichever
    delivery comes first handles a label and removes it, and the other sees it gone and does nothing.
    """
    site = site_of(event, payload.repository, payload.installation, payload.issue.number, is_pull_request=False)
    if site is None:
        return
    github = services.require_github()
    sender = Sender(payload.sender.login, payload.sender.type)

    resumed: list[tuple[str, PlannedTrigger]] = []
    fresh: list[tuple[int, str]] = []
    for seq, label in enumerate(labels):
        existing = await find_trigger(services, event.delivery_id, seq)
        if existing is not None:
            resumed.append((label, existing))
        else:
            fresh.append((seq, label))
    for _label, planned in resumed:
        await ensure_tracking_comment(services, github, site, planned)
    if fresh:
        present = await _live_labels(github, site)
        fresh = [(seq, label) for seq, label in fresh if label in present]
    handled = [label for label, _ in resumed]
    replies: list[str] = []
    if fresh:
        handled += await _consider_labels(services, github, event, site, sender, fresh, replies)
    if replies:
        await post_reply(github, event, site, "\n\n".join(dict.fromkeys(replies)))
    for label in dict.fromkeys(handled):
        await github.remove_label(site.installation_id, site.owner, site.repo, site.issue_number, label)


async def _consider_labels(
    services: Services,
    github: GitHubAPI,
    event: Event,
    site: Site,
    sender: Sender,
    labels: list[tuple[int, str]],
    replies: list[str],
) -> list[str]:
    """Gate and plan fresh agent labels; return the labels to remove (none when the sender is ignored)."""
    if await is_kickoff(services, github, sender):
        return []
    try:
        config = await load_config(services, github, site)
    except ConfigError as exc:
        if not await may_see_config_errors(services, github, site, sender):
            return []  # nothing happens, the label stays
        replies.append(messages.config_problems(exc.problems))
        log.info("config of %s is broken: %s", site.repository, "; ".join(exc.details()))
        return [label for _, label in labels]
    if not await screen_sender(services, sender, config):
        return []
    acknowledged = False
    for seq, label in labels:
        task = task_of_label(label) or ""
        spec = config.task(task)
        if spec is None:
            replies.append(
                messages.UNKNOWN_TASK_LABEL.format(label=messages.inline_code(label), tasks=known_tasks(config))
            )
            continue
        decision = await gate(services, github, site, config, sender, task)
        if decision.verdict is Verdict.IGNORE:
            return []
        if not decision.allowed:
            replies.append(refusal(decision, sender, messages.WHAT_LABEL.format(verb=task)))
            continue
        if not acknowledged:
            # A label has no comment to react to, so the 👀 goes on the issue itself.
            path = f"{site.api}/issues/{site.issue_number}/reactions"
            await github.request(site.installation_id, "POST", path, json={"content": "eyes"})
            acknowledged = True
        await start_trigger(
            services,
            github,
            event,
            site,
            seq=seq,
            source="label",
            task=task,
            agents=spec.agents,
            attempts=spec.attempts,
            sender=sender.login,
            reason=f"label {LABEL_PREFIX}{task} by @{sender.login}",
        )
    return [label for _, label in labels]
