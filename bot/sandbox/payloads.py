"""JSON shapes of GitHub's resources, one small builder per resource, shared by REST responses and webhooks.

Modelled on the real payloads in `shared/github/webhooks/` and on the fields GitHub's REST description marks
required. Builders are pure: the engine resolves git facts (shas, mergeability) and passes them in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.sandbox.clock import iso
from bot.sandbox.git import CommitInfo, FileChange
from bot.sandbox.state import (
    App,
    CheckRun,
    CheckSuite,
    Comment,
    CommitStatus,
    Delivery,
    Installation,
    Issue,
    Label,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    User,
    node_id,
)

Json = dict[str, Any]
REACTION_CONTENTS = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


@dataclass(frozen=True)
class Urls:
    """Where the sandbox is reachable: `api` for REST URLs, `web` for html and clone URLs (one server serves both)."""

    api: str
    web: str

    def repo(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def repo_html(self, repo: Repo) -> str:
        return f"{self.web}/{repo.full_name}"


def user(u: Urls, who: User) -> Json:
    base = f"{u.api}/users/{who.login}"
    kind = {"User": "U", "Bot": "Bot", "Organization": "Org"}[who.type]
    return {
        "login": who.login,
        "id": who.id,
        "node_id": node_id(kind, who.id),
        "avatar_url": f"{u.web}/avatars/u/{who.id}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"{u.web}/{who.login}" if who.type != "Bot" else f"{u.web}/apps/{who.login.removesuffix('[bot]')}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": who.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def app(u: Urls, a: App) -> Json:
    return {
        "id": a.id,
        "slug": a.slug,
        "node_id": node_id("App", a.id),
        "client_id": a.client_id,
        "owner": user(u, a.owner),
        "name": a.name,
        "description": a.description,
        "external_url": a.external_url,
        "html_url": f"{u.web}/apps/{a.slug}",
        "created_at": iso(a.created_at),
        "updated_at": iso(a.created_at),
        "permissions": dict(a.permissions),
        "events": list(a.events),
        "installations_count": 0,
    }


def installation(u: Urls, inst: Installation, a: App) -> Json:
    account = user(u, inst.account)
    # GET /app/installations documents `account` as allOf(simple-user, enterprise) (a slip in GitHub's
    # description); these few enterprise fields keep the object valid under every reading.
    account.update(
        {
            "name": inst.account.name or inst.account.login,
            "slug": inst.account.login.lower(),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
        }
    )
    return {
        "id": inst.id,
        "client_id": a.client_id,
        "account": account,
        "repository_selection": inst.repository_selection,
        "access_tokens_url": f"{u.api}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{u.api}/installation/repositories",
        "html_url": f"{u.web}/settings/installations/{inst.id}",
        "app_id": a.id,
        "app_slug": a.slug,
        "target_id": inst.account.id,
        "target_type": inst.account.type if inst.account.type != "Bot" else "User",
        "permissions": dict(inst.permissions),
        "events": list(inst.events),
        "created_at": iso(inst.created_at),
        "updated_at": iso(inst.updated_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def repository(u: Urls, repo: Repo, *, open_issues: int = 0, permissions: dict[str, bool] | None = None) -> Json:
    """The full repository object (GET /repos and every webhook's `repository`)."""
    api = u.repo(repo)
    html = u.repo_html(repo)
    out: Json = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": user(u, repo.owner),
        "html_url": html,
        "description": repo.description,
        "fork": False,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.updated_at),
        "pushed_at": iso(repo.pushed_at),
        "git_url": f"{u.web.replace('http', 'git', 1)}/{repo.full_name}.git",
        "ssh_url": f"git@sandbox:{repo.full_name}.git",
        "clone_url": f"{html}.git",
        "svn_url": html,
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if repo.private else "public",
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": repo.default_branch,
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_rebase_merge": True,
        "allow_auto_merge": False,
        "delete_branch_on_merge": False,
        "allow_update_branch": True,
        "network_count": 0,
        "subscribers_count": 0,
    }
    if permissions is not None:
        out["permissions"] = permissions
    return out


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


def check_suite(
    u: Urls,
    repo: Repo,
    suite: CheckSuite,
    a: App,
    runs: list[CheckRun],
    head_commit: CommitInfo | None,
    pulls: list[Json],
    *,
    with_repository: bool = True,
) -> Json:
    status, conclusion = suite_status(runs)
    out: Json = {
        "id": suite.id,
        "node_id": node_id("CheckSuite", suite.id),
        "head_branch": suite.head_branch,
        "head_sha": suite.head_sha,
        "status": status,
        "conclusion": conclusion,
        "url": f"{u.repo(repo)}/check-suites/{suite.id}",
        "before": None,
        "after": suite.head_sha,
        "pull_requests": pulls,
        "app": app(u, a),
        "created_at": iso(suite.created_at),
        "updated_at": iso(suite.updated_at),
        "latest_check_runs_count": len(runs),
        "check_runs_url": f"{u.repo(repo)}/check-suites/{suite.id}/check-runs",
        "rerequestable": True,
        "runs_rerequestable": True,
        "head_commit": simple_commit(head_commit) if head_commit else _unknown_commit(suite.head_sha),
    }
    if with_repository:
        out["repository"] = repository(u, repo)
    return out


def suite_status(runs: list[CheckRun]) -> tuple[str, str | None]:
    """A suite's status and conclusion as GitHub derives them from its runs."""
    if not runs:
        return "queued", None
    if any(r.status != "completed" for r in runs):
        return ("in_progress" if any(r.status == "in_progress" for r in runs) else "queued"), None
    order = ["action_required", "cancelled", "timed_out", "failure", "stale", "neutral", "skipped", "success"]
    conclusions = {r.conclusion or "neutral" for r in runs}
    for c in order:
        if c in conclusions:
            if c in ("neutral", "skipped") and "success" in conclusions:
                return "completed", "success"
            return "completed", c
    return "completed", "neutral"


def simple_commit(info: CommitInfo) -> Json:
    return {
        "id": info.sha,
        "tree_id": info.tree,
        "message": info.message,
        "timestamp": iso(info.committer_date),
        "author": {"name": info.author.name, "email": info.author.email},
        "committer": {"name": info.committer.name, "email": info.committer.email},
    }


def _unknown_commit(sha: str) -> Json:
    return {
        "id": sha,
        "tree_id": sha,
        "message": "",
        "timestamp": "1970-01-01T00:00:00Z",
        "author": None,
        "committer": None,
    }


def check_run(u: Urls, repo: Repo, run: CheckRun, suite: CheckSuite, a: App, pulls: list[Json]) -> Json:
    api = f"{u.repo(repo)}/check-runs/{run.id}"
    output = {
        "title": run.output.get("title"),
        "summary": run.output.get("summary"),
        "text": run.output.get("text"),
        "annotations_count": len(run.output.get("annotations", [])),
        "annotations_url": f"{api}/annotations",
    }
    return {
        "id": run.id,
        "name": run.name,
        "node_id": node_id("CheckRun", run.id),
        "head_sha": run.head_sha,
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{u.repo_html(repo)}/runs/{run.id}",
        "details_url": run.details_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "output": output,
        "check_suite": {"id": suite.id},
        "app": app(u, a),
        "pull_requests": pulls,
    }


def commit_status(u: Urls, repo: Repo, s: CommitStatus) -> Json:
    return {
        "url": f"{u.repo(repo)}/statuses/{s.sha}",
        "avatar_url": f"{u.web}/avatars/u/{s.creator.id}?v=4",
        "id": s.id,
        "node_id": node_id("StatusContext", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "creator": user(u, s.creator),
    }


def combined_state(statuses: list[CommitStatus]) -> str:
    if not statuses:
        return "pending"
    states = {s.state for s in statuses}
    if states & {"error", "failure"}:
        return "failure"
    if "pending" in states:
        return "pending"
    return "success"


def _git_user(who_name: str, email: str, when: datetime) -> Json:
    return {"name": who_name, "email": email, "date": iso(when)}


def commit(u: Urls, repo: Repo, info: CommitInfo, *, files: list[FileChange] | None = None) -> Json:
    """A commit as GET /repos/{o}/{r}/commits/{ref} returns it."""
    api = f"{u.repo(repo)}/commits/{info.sha}"
    out: Json = {
        "url": api,
        "sha": info.sha,
        "node_id": node_id("Commit", int(info.sha[:7], 16)),
        "html_url": f"{u.repo_html(repo)}/commit/{info.sha}",
        "comments_url": f"{api}/comments",
        "commit": {
            "url": f"{u.repo(repo)}/git/commits/{info.sha}",
            "author": _git_user(info.author.name, info.author.email, info.author_date),
            "committer": _git_user(info.committer.name, info.committer.email, info.committer_date),
            "message": info.message,
            "comment_count": 0,
            "tree": {"sha": info.tree, "url": f"{u.repo(repo)}/git/trees/{info.tree}"},
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{u.repo(repo)}/commits/{p}", "html_url": f"{u.repo_html(repo)}/commit/{p}"}
            for p in info.parents
        ],
    }
    if files is not None:
        out["files"] = [diff_entry(u, repo, info.sha, f) for f in files]
        adds = sum(f.additions for f in files)
        dels = sum(f.deletions for f in files)
        out["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
    return out


def diff_entry(u: Urls, repo: Repo, ref: str, f: FileChange) -> Json:
    out: Json = {
        "sha": f.sha,
        "filename": f.filename,
        "status": f.status,
        "additions": f.additions,
        "deletions": f.deletions,
        "changes": f.additions + f.deletions,
        "blob_url": f"{u.repo_html(repo)}/blob/{ref}/{f.filename}",
        "raw_url": f"{u.repo_html(repo)}/raw/{ref}/{f.filename}",
        "contents_url": f"{u.repo(repo)}/contents/{f.filename}?ref={ref}",
    }
    if f.patch is not None:
        out["patch"] = f.patch
    if f.previous_filename is not None:
        out["previous_filename"] = f.previous_filename
    return out


def git_ref(u: Urls, repo: Repo, ref: str, sha: str) -> Json:
    return {
        "ref": ref,
        "node_id": node_id("Ref", abs(hash((repo.id, ref))) % 10**9),
        "url": f"{u.repo(repo)}/git/{ref}",
        "object": {"sha": sha, "type": "commit", "url": f"{u.repo(repo)}/git/commits/{sha}"},
    }


def base64_lines(data: bytes) -> str:
    """File content as the contents API encodes it: base64 in lines of 60 characters."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def content_links(u: Urls, repo: Repo, path: str, sha: str, kind: str, ref: str) -> tuple[str, Json]:
    self_url = f"{u.repo(repo)}/contents/{path}?ref={ref}"
    git_url = f"{u.repo(repo)}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html_url = f"{u.repo_html(repo)}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return self_url, {"self": self_url, "git": git_url, "html": html_url}


def content_entry(u: Urls, repo: Repo, path: str, sha: str, kind: str, size: int, ref: str) -> Json:
    self_url, links = content_links(u, repo, path, sha, kind, ref)
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": links["git"],
        "html_url": links["html"],
        "download_url": f"{u.web}/{repo.full_name}/raw/{ref}/{path}" if kind == "file" else None,
        "_links": links,
    }


def short_branch(u: Urls, repo: Repo, name: str, sha: str, protected: bool = False) -> Json:
    return {"name": name, "commit": {"sha": sha, "url": f"{u.repo(repo)}/commits/{sha}"}, "protected": protected}


def branch(u: Urls, repo: Repo, name: str, info: CommitInfo) -> Json:
    return {
        "name": name,
        "commit": commit(u, repo, info),
        "_links": {"self": f"{u.repo(repo)}/branches/{name}", "html": f"{u.repo_html(repo)}/tree/{name}"},
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        },
        "protection_url": f"{u.repo(repo)}/branches/{name}/protection",
    }


def delivery_item(d: Delivery) -> Json:
    return {
        "id": d.id,
        "guid": d.guid,
        "delivered_at": iso(d.delivered_at or d.created_at),
        "redelivery": d.redelivery,
        "duration": round(d.duration, 3),
        "status": d.status,
        "status_code": d.status_code,
        "event": d.event,
        "action": d.action,
        "installation_id": d.installation_id,
        "repository_id": d.repository_id,
        "throttled_at": None,
    }


def delivery(d: Delivery, url: str | None, payload: Json) -> Json:
    out = delivery_item(d)
    out["url"] = url
    out["request"] = {"headers": dict(d.request_headers), "payload": payload}
    out["response"] = {"headers": dict(d.response_headers), "payload": d.response_body}
    return out


def push_commit(
    u: Urls,
    repo: Repo,
    info: CommitInfo,
    added: list[str],
    removed: list[str],
    modified: list[str],
    logins: dict[str, str] | None = None,
) -> Json:
    """A commit inside a `push` webhook; `logins` maps commit e-mails to the users they belong to."""
    return {
        "id": info.sha,
        "tree_id": info.tree,
        "distinct": True,
        "message": info.message,
        "timestamp": iso(info.committer_date),
        "url": f"{u.repo_html(repo)}/commit/{info.sha}",
        "author": _push_person(info.author.name, info.author.email, logins),
        "committer": _push_person(info.committer.name, info.committer.email, logins),
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def _push_person(name: str, email: str, logins: dict[str, str] | None) -> Json:
    out: Json = {"name": name, "email": email}
    login = (logins or {}).get(email.lower())
    if login is not None:
        out["username"] = login
    return out
