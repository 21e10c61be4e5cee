"""Support for the pull-request tests: runs that succeed with a pushed branch, webhook events for the handlers, and
a scan of everything Kickoff wrote to GitHub."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from bot.config import RepoConfig
from bot.prs.opening import PullRequestOpener
from bot.routing import Event
from bot.runspec import RunResult
from bot.store.models import PullRequest, Run, RunState, utcnow
from tests.fake_github import FakeGitHub
from tests.runs.support import FULL_NAME, INSTALLATION, ISSUE, OWNER, REPO, World

LEAKED_KEY = "sk-live-0123456789abcdef-leaked"  # an agent API key the transcript happens to print


def config(agents: tuple[str, ...] = ("ok",), **sections: Any) -> RepoConfig:
    data: dict[str, Any] = {
        "agents": {name: {"adapter": "command", "command": ["fake"]} for name in agents},
        "tasks": {"fix": {"agents": list(agents)}},
    }
    data.update(sections)
    return RepoConfig.model_validate(data)


def success(run: Run, *, branch: str | None = None, **extra: Any) -> RunResult:
    values: dict[str, Any] = {
        "run_id": run.id, "outcome": "succeeded", "pushed": True,
        "branch": branch or f"kickoff/{run.issue_number}-fix-{run.agent}-{run.id}", "head_sha": f"{run.id:040x}",
        "files_changed": ["app.py"], "summary": "Fixed the crash by checking for None.",
        "transcript_tail": f"editing app.py\nexport OPENAI_API_KEY={LEAKED_KEY}\ndone", "duration_seconds": 83.0,
        "usage": {"input_tokens": 1200, "output_tokens": 340, "cost_usd": 0.42, "model": "house-1"},
    }
    values.update(extra)
    return RunResult.model_validate(values)


async def succeed(w: World, run: Run, result: RunResult | None = None) -> RunResult:
    """The run went through a runner and reported `result` (default: a pushed branch)."""
    result = result or success(run)
    if await w.state(run.id) == RunState.QUEUED:
        await w.runs.transition(run.id, RunState.STARTING)
        # As the scheduler does before a runner starts: the run's branch is Kickoff's to assign.
        await w.runs.update(run.id, branch=result.branch or success(run).branch)
    await w.runs.finish(run.id, result)
    return result


def deliverer(w: World) -> PullRequestOpener:
    return PullRequestOpener(w.services, w.runs, config_for=w.config_for)


WRITING_VERBS = frozenset({
    "open_pull_request", "update_pull_request", "comment", "edit_comment", "create_check_run", "update_check_run",
    "add_labels", "request_reviewers",
})


def texts_written(gh: FakeGitHub) -> str:
    """Every string Kickoff sent to GitHub (bodies, comments, titles, check outputs)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name))

    for verb, args in gh.calls:
        if verb in WRITING_VERBS:
            walk(args)
    return "\n".join(out)


def event(name: str, payload: dict[str, Any], delivery_id: str = "d-1") -> Event:
    return Event(delivery_id, name, payload.get("action"), payload, installation_id=INSTALLATION,
                 repository=FULL_NAME)


def repository() -> dict[str, Any]:
    return {"id": 1, "name": REPO, "full_name": FULL_NAME, "owner": {"login": OWNER}, "default_branch": "main"}


def user(login: str = "ann", type_: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**6, "type": type_}


def pull_payload(action: str, row: PullRequest, *, merged: bool = False, mergeable: bool | None = None,
                 head_sha: str | None = None, sender: str = "ann") -> dict[str, Any]:
    return {
        "action": action, "number": row.number, "repository": repository(), "sender": user(sender),
        "installation": {"id": INSTALLATION},
        "pull_request": {
            "number": row.number, "state": "closed" if action == "closed" else "open", "merged": merged,
            "draft": False, "title": row.title, "mergeable": mergeable,
            "head": {"ref": row.head_ref, "sha": head_sha or row.head_sha or "0" * 40,
                     "repo": {"full_name": FULL_NAME}},
            "base": {"ref": row.base_ref, "sha": "b" * 40, "repo": {"full_name": FULL_NAME}},
        },
    }


def check_run_payload(action: str, *, name: str, head_sha: str, numbers: list[int], conclusion: str | None = None,
                      external_id: str | None = None, identifier: str | None = None, sender: str = "ann",
                      app_id: int = 99) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action, "repository": repository(), "sender": user(sender), "installation": {"id": INSTALLATION},
        "check_run": {
            "id": 1, "name": name, "head_sha": head_sha, "status": "completed", "conclusion": conclusion,
            "external_id": external_id, "app": {"id": app_id, "slug": "ci"},
            "pull_requests": [{"number": n, "head": {"ref": "x", "sha": head_sha}} for n in numbers],
        },
    }
    if identifier is not None:
        payload["requested_action"] = {"identifier": identifier}
    return payload


async def add_pull(w: World, run: Run, number: int, *, head_sha: str = "c" * 40, state: str = "open",
                   base: str = "main") -> PullRequest:
    """A Kickoff pull request `run` opened earlier."""
    now = utcnow()
    row = PullRequest(installation_id=INSTALLATION, repository=FULL_NAME, number=number, run_id=run.id,
                      trigger_id=run.trigger_id, issue_number=ISSUE, agent=run.agent, title=f"PR {number}",
                      head_ref=f"kickoff/{ISSUE}-fix-{run.agent}-{run.id}", head_sha=head_sha, base_ref=base,
                      state=state, created_at=now, updated_at=now)
    async with w.store.sessions.begin() as session:
        session.add(row)
        await session.execute(update(Run).where(Run.id == run.id).values(
            state=RunState.SUCCEEDED, progress="delivered", pr_number=number, branch=row.head_ref, base_branch=base))
    return row
