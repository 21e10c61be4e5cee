"""Issues, comments, labels and reactions."""

from __future__ import annotations

from bot.sandbox.clock import iso
from bot.sandbox.payloads.common import Json, Urls, user
from bot.sandbox.state import (
    Comment,
    Issue,
    Label,
    Reaction,
    Repo,
    node_id,
)

REACTION_CONTENTS = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


def label(u: Urls, repo: Repo, lab: Label) -> Json:
    return {
        "id": lab.id,
        "node_id": node_id("Label", lab.id),
        "url": f"{u.repo(repo)}/labels/{lab.name}",
        "name": lab.name,
        "color": lab.color,
        "default": lab.default,
        "description": lab.description,
    }


def reaction_rollup(url: str, reactions: list[Reaction]) -> Json:
    out: Json = {"url": url, "total_count": len(reactions)}
    for content in REACTION_CONTENTS:
        out[content] = sum(1 for r in reactions if r.content == content)
    return out


def reaction(u: Urls, r: Reaction) -> Json:
    return {
        "id": r.id,
        "node_id": node_id("Reaction", r.id),
        "user": user(u, r.user),
        "content": r.content,
        "created_at": iso(r.created_at),
    }


def issue(u: Urls, repo: Repo, iss: Issue, *, association: str = "NONE") -> Json:
    api = f"{u.repo(repo)}/issues/{iss.number}"
    labels = [label(u, repo, repo.labels[name.lower()]) for name in iss.labels if name.lower() in repo.labels]
    out: Json = {
        "url": api,
        "repository_url": u.repo(repo),
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{u.repo_html(repo)}/{'pull' if iss.pull else 'issues'}/{iss.number}",
        "id": iss.id,
        "node_id": node_id("Issue", iss.id),
        "number": iss.number,
        "title": iss.title,
        "user": user(u, iss.user),
        "labels": labels,
        "state": iss.state,
        "locked": iss.locked,
        "assignee": user(u, iss.assignees[0]) if iss.assignees else None,
        "assignees": [user(u, a) for a in iss.assignees],
        "milestone": None,
        "comments": len(iss.comment_ids),
        "created_at": iso(iss.created_at),
        "updated_at": iso(iss.updated_at),
        "closed_at": iso(iss.closed_at),
        "author_association": association,
        "active_lock_reason": None,
        "body": iss.body,
        "closed_by": user(u, iss.closed_by) if iss.closed_by else None,
        "reactions": reaction_rollup(f"{api}/reactions", iss.reactions),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
        "state_reason": iss.state_reason,
    }
    if iss.pull is not None:
        html = f"{u.repo_html(repo)}/pull/{iss.number}"
        out["pull_request"] = {
            "url": f"{u.repo(repo)}/pulls/{iss.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso(iss.pull.merged_at),
        }
        out["draft"] = iss.pull.draft
    return out


def comment(u: Urls, repo: Repo, c: Comment, *, association: str = "NONE", via_app: Json | None = None) -> Json:
    api = f"{u.repo(repo)}/issues/comments/{c.id}"
    iss = repo.issues[c.issue_number]
    kind = "pull" if iss.pull else "issues"
    return {
        "url": api,
        "html_url": f"{u.repo_html(repo)}/{kind}/{c.issue_number}#issuecomment-{c.id}",
        "issue_url": f"{u.repo(repo)}/issues/{c.issue_number}",
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": user(u, c.user),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "author_association": association,
        "body": c.body,
        "reactions": reaction_rollup(f"{api}/reactions", c.reactions),
        "performed_via_github_app": via_app,
    }
