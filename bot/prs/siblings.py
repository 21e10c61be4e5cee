"""Siblings: the pull requests one trigger's fan-out opened. When one merges, the others are superseded.

With `queue.close_siblings` (the default), each other open sibling is closed with a "Superseded by #X" comment and
its branch deleted. A Kickoff pull request closed without merging loses its branch too (nothing else uses it).
"""

from __future__ import annotations

import logging

from bot import messages
from bot.config import RepoConfig
from bot.github import GitHubAPI, GitHubError
from bot.services import Services
from bot.store.models import PullRequest
from bot.store.pulls import CLOSED, PullRequestStore

log = logging.getLogger(__name__)


async def close_superseded(services: Services, github: GitHubAPI, merged: PullRequest, config: RepoConfig) -> list[int]:
    """Close the open siblings of a merged Kickoff pull request; the numbers closed."""
    if not config.queue.close_siblings or merged.trigger_id is None or merged.run_id is None:
        return []
    pulls = PullRequestStore(services.store, clock=services.clock)
    owner, _, repo = merged.repository.partition("/")
    closed: list[int] = []
    for sibling in await pulls.siblings(merged.trigger_id, excluding=merged.id):
        await github.comment(merged.installation_id, owner, repo, sibling.number,
                             messages.SUPERSEDED.format(number=merged.number))
        await github.update_pull_request(merged.installation_id, owner, repo, sibling.number, state="closed")
        await pulls.track(sibling.repository, sibling.number, state=CLOSED)
        await delete_branch(github, sibling)
        closed.append(sibling.number)
    if closed:
        log.info("%s#%s merged: closed its siblings %s", merged.repository, merged.number, closed)
    return closed


async def delete_branch(github: GitHubAPI, row: PullRequest) -> None:
    """Delete a Kickoff pull request's branch (best effort: a protected or vanished branch stays as it is)."""
    owner, _, repo = row.repository.partition("/")
    try:
        await github.delete_branch(row.installation_id, owner, repo, row.head_ref)
    except GitHubError as exc:
        log.info("could not delete branch %s of %s#%s: %s", row.head_ref, row.repository, row.number, exc)
