"""Check suites, check runs and commit statuses, and the states GitHub rolls them up to."""

from __future__ import annotations

from bot.sandbox.clock import iso
from bot.sandbox.git import CommitInfo
from bot.sandbox.payloads.common import Json, Urls, repository, user
from bot.sandbox.payloads.identity import app
from bot.sandbox.payloads.repos import simple_commit, unknown_commit
from bot.sandbox.state import (
    App,
    CheckRun,
    CheckSuite,
    CommitStatus,
    Repo,
    node_id,
)


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
        "head_commit": simple_commit(head_commit) if head_commit else unknown_commit(suite.head_sha),
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
