"""Webhook deliveries for queue tests, built from recorded payloads to say what the fake GitHub holds."""

from __future__ import annotations

import copy
from typing import Any

from bot.github import CheckRunInfo, PullRequestInfo
from bot.github.models import PullReview
from bot.store.models import PullRequest
from tests.deliveries import load
from tests.handlers.harness import DEFAULT_BRANCH, FULL_NAME, INSTALLATION_ID, OWNER, REPO, Harness
from tests.queue.support import sha

CI_APP = 15368


async def add_prs(h: Harness, count: int, *, first: int = 1, approve_every: int = 3) -> None:
    """Kickoff pull requests `first`…`count` on GitHub and in the database, CI green; every `approve_every`th one
    approved by a writer (none with 0)."""
    now = h.clock()
    async with h.services.store.sessions.begin() as session:
        for number in range(first, count + 1):
            head = sha(f"head-{number}")
            pull = PullRequestInfo(
                number=number, state="open", merged=False, draft=False, title=f"Change {number}",
                author="kickoff[bot]", head_ref=f"kickoff/{number}", head_sha=head, head_repo=FULL_NAME,
                base_ref=DEFAULT_BRANCH, mergeable=True, html_url=f"https://github.com/{FULL_NAME}/pull/{number}",
            )
            h.gh.pulls[(OWNER, REPO, number)] = pull
            h.gh.labels[(OWNER, REPO, number)] = []
            h.gh.pull_files[(OWNER, REPO, number)] = [f"file{number}.py"]
            h.gh.foreign_check_runs[(OWNER, REPO, head)] = [ci_run(number, head, "success")]
            if approve_every and number % approve_every == 0:  # some approved (by a writer: the permission is asked)
                h.gh.pull_reviews[(OWNER, REPO, number)] = [PullReview(number, "rev", "APPROVED")]
            session.add(PullRequest(
                installation_id=INSTALLATION_ID, repository=FULL_NAME, number=number, agent="claude",
                title=pull.title, head_ref=pull.head_ref, head_sha=head, base_ref=DEFAULT_BRANCH, state="open",
                created_at=now, updated_at=now,
            ))


def ci_run(number: int, head: str, conclusion: str | None) -> CheckRunInfo:
    return CheckRunInfo(id=1000 + number, name="ci", head_sha=head, status="completed" if conclusion else
                        "in_progress", conclusion=conclusion, app_id=CI_APP, title="", summary="")


def check_run_payload(
    h: Harness, number: int, action: str, conclusion: str | None, *, run_id: int | None = None
) -> dict[str, Any]:
    """A `check_run` delivery of the CI run `run_id` (default: the one `add_prs` made) on the pull request's head."""
    payload = copy.deepcopy(load("check_run.completed.1.json"))
    head = h.gh.pulls[(OWNER, REPO, number)].head_sha
    payload["action"] = action
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["repository"]["full_name"] = FULL_NAME
    payload["check_run"].update(
        id=run_id if run_id is not None else 1000 + number, name="ci", head_sha=head,
        status="completed" if conclusion else "in_progress",
        conclusion=conclusion, pull_requests=[], app={**payload["check_run"]["app"], "id": CI_APP},
    )
    return payload


def pull_payload(h: Harness, number: int, action: str, updated_at: str) -> dict[str, Any]:
    """A `pull_request` delivery saying what the fake GitHub holds of the pull request now."""
    payload = copy.deepcopy(load("pull_request.synchronize.1.json"))
    pull = h.gh.pulls[(OWNER, REPO, number)]
    payload["action"] = action
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["repository"]["full_name"] = FULL_NAME
    body = payload["pull_request"]
    body.update(number=number, state=pull.state, merged=pull.merged, draft=pull.draft, title=pull.title,
                mergeable=pull.mergeable, html_url=pull.html_url, updated_at=updated_at,
                labels=[{"name": name} for name in h.gh.labels[(OWNER, REPO, number)]])
    body["head"].update(ref=pull.head_ref, sha=pull.head_sha)
    body["head"]["repo"]["full_name"] = FULL_NAME
    body["base"]["ref"] = DEFAULT_BRANCH
    body["user"]["login"] = pull.author
    return payload
