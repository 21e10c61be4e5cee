"""The demo's summary: what happened, as a JSON document (`--json FILE`) and as the closing table."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bot.demo.harness import AGENT_CHECK, CI_CHECK, QUEUE_CHECK, PullView, World
from bot.demo.story import Progress
from bot.sandbox.state import RequestRecord

READ_METHODS = frozenset({"GET", "HEAD"})


def request_budget(requests: Iterable[RequestRecord]) -> dict[str, Any]:
    """Kickoff's REST requests as GitHub's rate limit sees them: `counted` (reads and writes) and `not_modified`
    (304s, which GitHub does not count), in all and by endpoint (method and route template), most counted first."""
    rows: dict[str, dict[str, int]] = {}
    reads = writes = not_modified = 0
    for record in requests:
        row = rows.setdefault(record.endpoint, {"counted": 0, "not_modified": 0})
        if record.not_modified:
            row["not_modified"] += 1
            not_modified += 1
            continue
        row["counted"] += 1
        if record.method in READ_METHODS:
            reads += 1
        else:
            writes += 1
    ordered = sorted(rows.items(), key=lambda item: (-item[1]["counted"], -item[1]["not_modified"], item[0]))
    return {"counted": reads + writes, "reads": reads, "writes": writes, "not_modified": not_modified,
            "by_endpoint": dict(ordered)}


def until_pulls_ready(requests: Sequence[RequestRecord], numbers: Iterable[int]) -> dict[str, Any] | None:
    """`request_budget` of the requests up to the moment every pull request in `numbers` had its labels, its
    review request and its `agent-run` check (the check run Kickoff creates right after labelling), from the
    first request of the process: what reaching the pull requests cost, queue work done meanwhile included.
    None when one of them never got that far."""
    wanted = set(numbers)
    labelled: dict[int, int] = {}
    reviewed: set[int] = set()
    for index, record in enumerate(requests):
        if record.method != "POST":
            continue
        parts = record.path.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-1] == "labels" and parts[-3] == "issues" and parts[-2].isdigit():
            if int(parts[-2]) in wanted:
                labelled.setdefault(int(parts[-2]), index)
        elif len(parts) >= 3 and parts[-1] == "requested_reviewers" and parts[-2].isdigit():
            reviewed.add(int(parts[-2]))
    if not wanted or set(labelled) != wanted:
        return None
    last = max(labelled.values())
    end = next((i for i in range(last + 1, len(requests))
                if requests[i].method == "POST" and requests[i].path.endswith("/check-runs")), None)
    if end is None:
        return None
    budget = request_budget(requests[: end + 1])
    budget["pull_requests"] = len(wanted)
    budget["review_requested"] = len(reviewed & wanted)
    return budget


def _check(pull: PullView, name: str) -> dict[str, Any] | None:
    check = pull.check(name)
    if check is None:
        return None
    return {"status": check.status, "conclusion": check.conclusion, "title": check.title}


def build_summary(progress: Progress, world: World | None, *, ok: bool, duration: float) -> dict[str, Any]:
    """Runs with states and PRs; PRs with their final `review-queue` conclusion and title; merged and superseded
    numbers; the GitHub requests Kickoff made (its App JWT and installation tokens, from the sandbox's log), by
    endpoint, counted against the rate limit or answered 304."""
    pulls = progress.pulls
    merged = [p.number for p in pulls if p.state == "merged"]
    superseded = [p.number for p in pulls if p.state == "closed"] if merged else []
    failed = next((p for p in progress.phases if p.status == "failed"), None)
    summary: dict[str, Any] = {
        "ok": ok,
        "duration_seconds": round(duration, 2),
        "failed_phase": failed.key if failed else None,
        "error": progress.error,
        "repository": f"{world.owner}/{world.repo}" if world else None,
        "issue": progress.issue,
        "phases": [
            {"key": p.key, "title": p.title, "status": p.status,
             "seconds": round(p.seconds, 2) if p.seconds is not None else None, "note": p.note}
            for p in progress.phases
        ],
        "runs": [
            {"id": r.id, "agent": r.agent, "kind": r.kind, "state": r.state, "reason": r.reason, "branch": r.branch,
             "pull_request": (pull.number if (pull := progress.pull_of(r)) else None)}
            for r in progress.runs
        ],
        "pull_requests": [
            {"number": p.number, "title": p.title, "state": p.state, "head_ref": p.head_ref,
             "review_queue": _check(p, QUEUE_CHECK), "agent_run": _check(p, AGENT_CHECK), "ci": _check(p, CI_CHECK)}
            for p in pulls
        ],
        "merged": merged,
        "superseded": superseded,
        # The fan-out's attempts as Kickoff ranked them (rank 1 first): what the reviewer was shown first.
        "ranking": None if progress.ranking is None else {
            "source": progress.ranking.source, "note": progress.ranking.note,
            "rows": [{"rank": row.rank, "pull_request": row.pr, "agent": row.agent, "reason": row.reason,
                      "verify": row.verify, "ci": row.ci, "added": row.added, "removed": row.removed,
                      "files": row.files} for row in progress.ranking.rows],
        },
        "github_requests": None,
        "violations": [],
    }
    if world is not None:
        rest = world.kickoff_requests()
        budget = request_budget(rest)
        summary["github_requests"] = {
            "total": len(rest),
            "counted": budget["counted"],
            "reads": budget["reads"],
            "writes": budget["writes"],
            "not_modified": budget["not_modified"],
            "webhooks_received": len(world.sandbox.deliveries(world.creds.app_id)),
            "git": len(world.git_requests()),
            "by_method": dict(sorted(Counter(r.method for r in rest).items())),
            "errors": sum(1 for r in rest if r.status >= 400),
            "by_endpoint": budget["by_endpoint"],
        }
        ready = until_pulls_ready(rest, [p.number for p in pulls])
        # From the process's start (the label comes first) to the pull requests with labels, reviewers and checks.
        summary["github_requests"]["until_pull_requests"] = None if ready is None else {
            key: ready[key] for key in ("counted", "reads", "writes", "not_modified", "pull_requests", "by_endpoint")
        }
        summary["violations"] = [{"where": v.where, "problems": list(v.problems)} for v in world.violations()]
    return summary


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
