"""Pull requests (full and simple), reviews, review comments and the head/base refs."""

from __future__ import annotations

from dataclasses import dataclass

from bot.sandbox.clock import iso
from bot.sandbox.payloads.common import Json, Urls, repository, user
from bot.sandbox.payloads.issues import label, reaction_rollup
from bot.sandbox.state import (
    Issue,
    Repo,
    Review,
    ReviewComment,
    node_id,
)


@dataclass(frozen=True)
class PullFacts:
    """What git says about a pull request at the moment of building it."""

    head_sha: str
    base_sha: str
    mergeable: bool | None
    mergeable_state: str
    rebaseable: bool | None
    commits: int
    additions: int
    deletions: int
    changed_files: int


def _pull_links(u: Urls, repo: Repo, number: int, head_sha: str) -> Json:
    api = u.repo(repo)
    return {
        "self": {"href": f"{api}/pulls/{number}"},
        "html": {"href": f"{u.repo_html(repo)}/pull/{number}"},
        "issue": {"href": f"{api}/issues/{number}"},
        "comments": {"href": f"{api}/issues/{number}/comments"},
        "review_comments": {"href": f"{api}/pulls/{number}/comments"},
        "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
        "commits": {"href": f"{api}/pulls/{number}/commits"},
        "statuses": {"href": f"{api}/statuses/{head_sha}"},
    }


def pull_request_simple(u: Urls, repo: Repo, iss: Issue, facts: PullFacts, *, association: str = "NONE") -> Json:
    pr = iss.pull
    assert pr is not None
    api = f"{u.repo(repo)}/pulls/{iss.number}"
    html = f"{u.repo_html(repo)}/pull/{iss.number}"
    labels = [label(u, repo, repo.labels[name.lower()]) for name in iss.labels if name.lower() in repo.labels]
    repo_json = repository(u, repo)
    return {
        "url": api,
        "id": pr.id,
        "node_id": node_id("PullRequest", pr.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{u.repo(repo)}/issues/{iss.number}",
        "number": iss.number,
        "state": iss.state,
        "locked": iss.locked,
        "title": iss.title,
        "user": user(u, iss.user),
        "body": iss.body,
        "created_at": iso(iss.created_at),
        "updated_at": iso(iss.updated_at),
        "closed_at": iso(iss.closed_at),
        "merged_at": iso(pr.merged_at),
        "merge_commit_sha": pr.merge_commit_sha,
        "assignee": user(u, iss.assignees[0]) if iss.assignees else None,
        "assignees": [user(u, a) for a in iss.assignees],
        "requested_reviewers": [user(u, r) for r in pr.requested_reviewers],
        "requested_teams": [],
        "labels": labels,
        "milestone": None,
        "draft": pr.draft,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{u.repo(repo)}/pulls/comments{{/number}}",
        "comments_url": f"{u.repo(repo)}/issues/{iss.number}/comments",
        "statuses_url": f"{u.repo(repo)}/statuses/{facts.head_sha}",
        "head": {
            "label": f"{repo.owner.login}:{pr.head_ref}",
            "ref": pr.head_ref,
            "sha": facts.head_sha,
            "user": user(u, repo.owner),
            "repo": repo_json,
        },
        "base": {
            "label": f"{repo.owner.login}:{pr.base_ref}",
            "ref": pr.base_ref,
            "sha": facts.base_sha,
            "user": user(u, repo.owner),
            "repo": repo_json,
        },
        "_links": _pull_links(u, repo, iss.number, facts.head_sha),
        "author_association": association,
        "auto_merge": None,
        "active_lock_reason": None,
    }


def pull_request(u: Urls, repo: Repo, iss: Issue, facts: PullFacts, *, association: str = "NONE") -> Json:
    pr = iss.pull
    assert pr is not None
    out = pull_request_simple(u, repo, iss, facts, association=association)
    out.update(
        {
            "merged": pr.merged,
            "mergeable": facts.mergeable,
            "rebaseable": facts.rebaseable,
            "mergeable_state": facts.mergeable_state,
            "merged_by": user(u, pr.merged_by) if pr.merged_by else None,
            "comments": len(iss.comment_ids),
            "review_comments": len(pr.review_comments),
            "maintainer_can_modify": pr.maintainer_can_modify,
            "commits": facts.commits,
            "additions": facts.additions,
            "deletions": facts.deletions,
            "changed_files": facts.changed_files,
        }
    )
    return out


def review(u: Urls, repo: Repo, number: int, r: Review, *, association: str = "NONE") -> Json:
    html = f"{u.repo_html(repo)}/pull/{number}#pullrequestreview-{r.id}"
    out: Json = {
        "id": r.id,
        "node_id": node_id("PullRequestReview", r.id),
        "user": user(u, r.user),
        "body": r.body,
        "state": r.state,
        "html_url": html,
        "pull_request_url": f"{u.repo(repo)}/pulls/{number}",
        "author_association": association,
        "_links": {"html": {"href": html}, "pull_request": {"href": f"{u.repo(repo)}/pulls/{number}"}},
        "commit_id": r.commit_id,
    }
    if r.submitted_at is not None:
        out["submitted_at"] = iso(r.submitted_at)
    return out


def review_comment(u: Urls, repo: Repo, number: int, c: ReviewComment, *, association: str = "NONE") -> Json:
    api = f"{u.repo(repo)}/pulls/comments/{c.id}"
    html = f"{u.repo_html(repo)}/pull/{number}#discussion_r{c.id}"
    out: Json = {
        "url": api,
        "pull_request_review_id": c.review_id,
        "id": c.id,
        "node_id": node_id("PullRequestReviewComment", c.id),
        "diff_hunk": "@@ -1 +1 @@",
        "path": c.path,
        "position": c.line,
        "original_position": c.line,
        "commit_id": c.commit_id,
        "original_commit_id": c.original_commit_id,
        "user": user(u, c.user),
        "body": c.body,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "html_url": html,
        "pull_request_url": f"{u.repo(repo)}/pulls/{number}",
        "author_association": association,
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "pull_request": {"href": f"{u.repo(repo)}/pulls/{number}"},
        },
        "line": c.line,
        "original_line": c.line,
        "side": c.side,
        "subject_type": "line",
        "reactions": reaction_rollup(f"{api}/reactions", []),
    }
    if c.in_reply_to_id is not None:
        out["in_reply_to_id"] = c.in_reply_to_id
    return out


def pull_ref(
    u: Urls, repo: Repo, number: int, pr_id: int, head_ref: str, head_sha: str, base_ref: str, base_sha: str
) -> Json:
    """A pull request as the checks API mentions it."""
    mini = {"id": repo.id, "url": u.repo(repo), "name": repo.name}
    return {
        "url": f"{u.repo(repo)}/pulls/{number}",
        "id": pr_id,
        "number": number,
        "head": {"ref": head_ref, "sha": head_sha, "repo": mini},
        "base": {"ref": base_ref, "sha": base_sha, "repo": mini},
    }
