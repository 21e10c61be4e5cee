"""Follow-ups: `/agent <task>` on a pull request, and the automatic fix runs.

On a Kickoff pull request the agent works on that pull request's branch and pushes to it (no new pull request). On
a person's pull request from the same repository it starts a branch of its own from the pull request's head and
Kickoff opens a pull request into that head. Fork pull requests never get here (the permission gate refuses them,
and the scheduler refuses a fork head again). The prompt carries the review comments that still apply (only those
by people who may start runs: the rule of bot.runs.snapshot) and the failing checks' summaries, fenced as untrusted
data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bot import messages
from bot.github import CheckRunInfo, GitHubAPI, GitHubError
from bot.services import Services
from bot.untrusted import fence_untrusted

log = logging.getLogger(__name__)

FAILING: Final = frozenset({"failure", "timed_out", "action_required", "cancelled", "startup_failure"})
OWN_CHECKS: Final = frozenset({messages.AGENT_CHECK_NAME})
MAX_REVIEW_COMMENTS: Final = 30
MAX_FAILING_CHECKS: Final = 10
CHECK_TEXT_CHARS: Final = 2000
PROMPT_PART_CHARS: Final = 15_000


@dataclass(frozen=True, slots=True)
class Target:
    """Where a follow-up run works: its branch, the base it starts from, and how the runner checks it out."""

    branch: str
    base: str
    checkout: str  # branch: push to the pull request's own branch; base: a new branch from `base`


async def is_kickoff_pull_request(services: Services, repository: str, number: int) -> bool:
    row = await services.pulls.by_number(repository, number)
    return row is not None and row.run_id is not None


async def target_for(
    services: Services, repository: str, number: int, *, head_ref: str, base_ref: str, current: str | None,
    new_branch: str,
) -> Target:
    """The follow-up's branches: the Kickoff pull request's own, or a new one into a person's pull request."""
    if await is_kickoff_pull_request(services, repository, number):
        return Target(current or head_ref, base_ref, "branch")
    return Target(new_branch, head_ref, "base")


async def prompt_context(
    github: GitHubAPI, installation_id: int, repository: str, number: int, head_sha: str | None,
    ignore_checks: frozenset[str] = OWN_CHECKS, trust: Callable[[str, str], Awaitable[bool]] | None = None,
) -> str:
    """The review comments still applying to the pull request and its failing checks, fenced; "" when none.

    With `trust` (bot.runs.snapshot.Trust), review comments by people who may not start runs are left out and
    counted: on a public repository anyone can comment on a diff.
    """
    owner, _, repo = repository.partition("/")
    try:
        comments = await github.list_review_comments(installation_id, owner, repo, number)
    except GitHubError as exc:
        log.warning("could not read the review comments of %s#%s: %s", repository, number, exc)
        comments = []
    current = [c for c in comments if not c.outdated and c.author_type != "Bot" and c.body.strip()]
    current = current[-MAX_REVIEW_COMMENTS:]
    left_out = 0
    if trust is not None:
        kept = []
        for comment in current:
            if await trust(comment.author, comment.author_type):
                kept.append(comment)
            else:
                left_out += 1
        current = kept
    review = "\n\n".join(
        f"@{c.author} on `{c.path}`" + (f" line {c.line}" if c.line else "") + f":\n{c.body}" for c in current
    )
    failing: list[CheckRunInfo] = []
    if head_sha:
        try:
            checks = await github.list_check_runs(installation_id, owner, repo, head_sha)
        except GitHubError as exc:
            log.warning("could not read the checks of %s#%s: %s", repository, number, exc)
            checks = []
        failing = [c for c in checks if c.conclusion in FAILING and c.name not in ignore_checks]
    checks_text = "\n\n".join(
        f"{c.name}: {c.conclusion}\n{c.title}\n{c.summary[:CHECK_TEXT_CHARS]}".strip()
        for c in failing[:MAX_FAILING_CHECKS]
    )
    # Cleaning and fencing run off the event loop, like the rest of the prompt.
    return await asyncio.to_thread(_render, number, review, left_out, checks_text)


def _render(number: int, review: str, left_out: int, checks: str) -> str:
    parts: list[str] = []
    if review:
        parts.append(fence_untrusted(messages.FOLLOWUP_PROMPT_REVIEW.format(number=number), review,
                                     PROMPT_PART_CHARS))
    if left_out:
        parts.append(messages.PROMPT_REVIEW_COMMENTS_LEFT_OUT.format(count=left_out))
    if checks:
        parts.append(fence_untrusted(messages.FOLLOWUP_PROMPT_CHECKS.format(number=number), checks,
                                     PROMPT_PART_CHARS))
    if not parts:
        return ""
    return "\n\n".join([messages.FOLLOWUP_PROMPT_TASK.format(number=number), *parts])
