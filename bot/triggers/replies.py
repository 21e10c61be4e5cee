"""Kickoff's answers on an issue: the one reply helper every feature uses, and the texts of a refusal.

Every reply carries a marker naming the delivery (and the command within it), so an answer is posted once however
often the delivery is handled: the dispatcher retries a delivery that failed half-way, and an operator can replay one.
"""

from __future__ import annotations

import logging
import re

from bot import messages
from bot.config import ConfigError, RepoConfig
from bot.gate import Decision, Reason, Sender
from bot.github import GitHubAPI
from bot.routing import Event, Site

log = logging.getLogger(__name__)

_MARKER_KEY = re.compile(r"[^A-Za-z0-9._:-]")


def marker_key(event: Event) -> str:
    return _MARKER_KEY.sub("", event.delivery_id)[:100]


async def find_own_comment(github: GitHubAPI, site: Site, marker: str) -> int | None:
    """The id of a comment Kickoff posted earlier on this issue that ends with `marker`."""
    for comment in await github.list_issue_comments(site.installation_id, site.owner, site.repo, site.issue_number):
        if comment.author_type == "Bot" and marker in comment.body:
            return comment.id
    return None


async def post_reply(github: GitHubAPI, event: Event, site: Site, body: str, *, seq: int | None = None) -> None:
    """Answer a delivery with one comment, unless an earlier attempt (a retry, a replay) already answered it.

    With `seq` (the command's index) the comment answers one command of the delivery; it looks for an earlier
    answer only on a retry (`event.attempt > 1`), which saves the read on a first attempt but means an operator's
    replay (back to attempt 1) answers the command again.
    """
    key = marker_key(event) if seq is None else f"{marker_key(event)}.{seq}"
    marker = messages.REPLY_MARKER.format(key=key)
    if (seq is None or event.attempt > 1) and await find_own_comment(github, site, marker) is not None:
        return
    await github.comment(site.installation_id, site.owner, site.repo, site.issue_number,
                         messages.with_marker(body, marker))


async def report_config_error(github: GitHubAPI, event: Event, site: Site, error: ConfigError) -> None:
    log.info("config of %s is broken: %s", site.repository, "; ".join(error.details()))
    await post_reply(github, event, site, error.reply())


def refusal(decision: Decision, sender: Sender, what: str) -> str:
    """Why the gate refused `sender` `what`, in the words the issue shows."""
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
