"""Agent labels (`agent:<task>`): each one on an issue starts a trigger, and is removed once handled so it can be
applied again. The kernel (config, gate, replies, planning) is `bot.triggers`."""

from __future__ import annotations

import logging

from bot import messages
from bot.config import ConfigError
from bot.events import IssuesEvent
from bot.features import Features
from bot.gate import Sender, Verdict
from bot.github import GitHubAPI
from bot.routing import Event, Router
from bot.runs.planning import PlannedTrigger, find_trigger
from bot.triggers import Site, known_tasks, post_reply, refusal, site_of

log = logging.getLogger(__name__)
router: Router[Features] = Router()

LABEL_PREFIX = "agent:"


def task_of_label(name: str) -> str | None:
    """`agent:fix` → `fix`; None for labels that are not Kickoff's."""
    if not name.lower().startswith(LABEL_PREFIX):
        return None
    return name[len(LABEL_PREFIX) :].strip().lower()


async def _live_labels(github: GitHubAPI, site: Site) -> set[str]:
    return set(await github.for_repo(site.installation_id, site.repository).list_labels(site.issue_number))


@router.on("issues.labeled")
async def agent_label_added(event: Event, services: Features) -> None:
    payload = event.parse(IssuesEvent)
    if payload.label is None or task_of_label(payload.label.name) is None or payload.issue.is_pull_request:
        return
    await _handle_labels(event, services, payload, [payload.label.name])


@router.on("issues.opened")
async def issue_opened_with_agent_labels(event: Event, services: Features) -> None:
    payload = event.parse(IssuesEvent)
    labels = [label.name for label in payload.issue.labels if task_of_label(label.name) is not None]
    if labels and not payload.issue.is_pull_request:
        await _handle_labels(event, services, payload, labels)


async def _handle_labels(event: Event, services: Features, payload: IssuesEvent, labels: list[str]) -> None:
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
        await services.triggers.ensure_tracking_comment(site, planned)
    if fresh:
        present = await _live_labels(github, site)
        fresh = [(seq, label) for seq, label in fresh if label in present]
    handled = [label for label, _ in resumed]
    replies: list[str] = []
    if fresh:
        handled += await _consider_labels(services, event, site, sender, fresh, replies)
    if replies:
        await post_reply(github, event, site, "\n\n".join(dict.fromkeys(replies)))
    for label in dict.fromkeys(handled):
        await github.remove_label(site.installation_id, site.owner, site.repo, site.issue_number, label)


async def _consider_labels(
    services: Features,
    event: Event,
    site: Site,
    sender: Sender,
    labels: list[tuple[int, str]],
    replies: list[str],
) -> list[str]:
    """Gate and plan fresh agent labels; return the labels to remove (none when the sender is ignored)."""
    triggers = services.triggers
    if await triggers.is_kickoff(sender):
        return []
    try:
        config = await triggers.load_config(site)
    except ConfigError as exc:
        if not await triggers.may_see_config_errors(site, sender):
            return []  # nothing happens, the label stays
        replies.append(exc.reply())
        log.info("config of %s is broken: %s", site.repository, "; ".join(exc.details()))
        return [label for _, label in labels]
    if not triggers.considers(sender, config):
        return []
    planned: list[PlannedTrigger] = []
    for seq, label in labels:
        task = task_of_label(label) or ""
        spec = config.task(task)
        if spec is None:
            replies.append(
                messages.UNKNOWN_TASK_LABEL.format(label=messages.inline_code(label), tasks=known_tasks(config))
            )
            continue
        decision = await triggers.gate(site, config, sender, task)
        if decision.verdict is Verdict.IGNORE:
            await _acknowledge(services, site, planned)
            return []
        if not decision.allowed:
            replies.append(refusal(decision, sender, messages.WHAT_LABEL.format(verb=task)))
            continue
        # Planned first, before any of the paced writes below: the runs can start while those wait.
        planned.append(await triggers.plan(
            event,
            site,
            seq=seq,
            source="label",
            task=task,
            agents=spec.agents,
            attempts=spec.attempts,
            sender=sender.login,
            reason=f"label {LABEL_PREFIX}{task} by @{sender.login}",
        ))
    await _acknowledge(services, site, planned)
    return [label for _, label in labels]


async def _acknowledge(services: Features, site: Site, planned: list[PlannedTrigger]) -> None:
    """The paced writes of planned triggers: their tracking comments. A label has no comment to react 👀 to, and
    the tracking comment, posted at once, is the acknowledgement (a reaction on the issue as well would be one more
    write per trigger against the rate limit, issue 15)."""
    if not planned:
        return
    for trigger in planned:
        await services.triggers.ensure_tracking_comment(site, trigger)
