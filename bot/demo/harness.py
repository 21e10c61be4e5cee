"""The sandbox harness: the GitHub simulator and Kickoff, wired together in one process, on loopback ports.

`kickoff demo` tells its story through it, and the end-to-end tests drive the README's story through the same one:

    async with kickoff_world(tmp_path) as world:
        await world.create_sample_repo()
        issue = await world.sandbox.aio.open_issue(OWNER, REPO, "Fix it", sender=MAINTAINER, labels=["agent:fix"])
        await world.wait_for(lambda: world.runs_settled(3), 30, "three runs")

The simulator (`Sandbox` + `SandboxServer`) runs on its own engine thread; Kickoff (`create_app`, uvicorn, the
dispatcher and the scheduler) runs on the caller's event loop. Kickoff is configured in code only — nothing is read
from the caller's `.env` — with its database in `root`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from bot.demo import sample
from bot.ranking import Ranking
from bot.sandbox import AppCredentials, Sandbox, SandboxServer, Violation
from bot.sandbox.state import RequestRecord
from bot.settings import Settings
from bot.store.db import Store
from bot.store.models import Run, RunState, Trigger

WEBHOOK_PATH: Final = "/api/github/webhooks"
KICKOFF_APP_NAME: Final = "Kickoff"
CI_CHECK: Final = "ci"
QUEUE_CHECK: Final = "review-queue"
AGENT_CHECK: Final = "agent-run"

# The harness's tuning of Kickoff's parts (the scheduler and the local runner), on top of `kickoff_settings`.
HARNESS_SETTINGS: Final = {
    "KICKOFF_SCHEDULER_TICK_SECONDS": "0.5",
    "KICKOFF_TRACKING_INTERVAL_SECONDS": "2",
    "KICKOFF_RUNNER_GRACE_SECONDS": "2",
    "KICKOFF_KEEP_WORKSPACES": "false",
}


class StoryTimeout(Exception):
    """A step of the story did not happen in time; the message says which, and what was seen instead."""


@dataclass(frozen=True)
class CheckView:
    name: str
    status: str
    conclusion: str | None
    title: str
    summary: str


@dataclass(frozen=True)
class PullView:
    """A pull request as the simulated GitHub holds it, with the latest check run of each name on its head."""

    number: int
    title: str
    author: str
    head_ref: str
    head_sha: str
    state: str  # open | closed | merged
    draft: bool
    approved: bool
    checks: Mapping[str, CheckView]
    labels: tuple[str, ...]

    def check(self, name: str) -> CheckView | None:
        return self.checks.get(name)


@dataclass(frozen=True)
class CommentView:
    id: int
    author: str
    body: str


@dataclass(frozen=True)
class RunView:
    id: int
    agent: str
    kind: str  # new | followup | fix
    state: str
    reason: str | None
    branch: str | None
    pr_number: int | None


@dataclass
class World:
    """The running pair: the sandbox, Kickoff's URL and app, and the App installed on the owner's account."""

    root: Path
    sandbox: Sandbox
    github_url: str
    kickoff_url: str
    app: FastAPI
    creds: AppCredentials
    owner: str = sample.OWNER
    repo: str = sample.REPO
    installation_id: int | None = None
    started: float = field(default_factory=time.monotonic)

    async def create_sample_repo(
        self,
        files: Mapping[str, str] | None = None,
        *,
        ci: bool = True,
        install: bool = True,
    ) -> None:
        """The sample repository (or `files`), its CI, its maintainer and reviewer, and Kickoff installed on it."""
        aio = self.sandbox.aio
        await aio.create_repo(self.owner, self.repo, dict(files or sample.files()))
        await aio.set_permission(self.owner, self.repo, sample.MAINTAINER, "maintain")
        await aio.set_permission(self.owner, self.repo, sample.REVIEWER, "write")
        if ci:
            await aio.set_ci(self.owner, self.repo, list(sample.CI_COMMAND), timeout=120.0)
        if install:
            self.installation_id = await aio.install(self.creds.app_id, self.owner, [self.repo])

    async def pulls(self) -> list[PullView]:
        """Every pull request of the repository, oldest first (read on the sandbox's engine loop)."""
        return await self.sandbox.arun(_pulls(self.sandbox, self.owner, self.repo))

    async def comments(self, number: int) -> list[CommentView]:
        """The comments on an issue or pull request, oldest first."""
        return await self.sandbox.arun(_comments(self.sandbox, self.owner, self.repo, number))

    async def labels(self, number: int) -> list[str]:
        return await self.sandbox.arun(_labels(self.sandbox, self.owner, self.repo, number))

    async def read_file(self, ref: str, path: str) -> str | None:
        """A file's text on a branch (or any revision) of the repository; None when it is not there."""
        return await self.sandbox.arun(_read_file(self.sandbox, self.owner, self.repo, ref, path))

    def kickoff_requests(self) -> list[RequestRecord]:
        """The REST requests Kickoff made with its App JWT or its installation tokens (not the runners' git)."""
        return [r for r in self.sandbox.requests if r.kind == "rest" and r.app_id == self.creds.app_id]

    def git_requests(self) -> list[RequestRecord]:
        """The git smart-HTTP requests made with Kickoff's per-run tokens (the runners' clones and pushes)."""
        return [r for r in self.sandbox.requests if r.kind == "git" and r.app_id == self.creds.app_id]

    def violations(self) -> list[Violation]:
        return self.sandbox.violations

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    async def runs(self, issue: int | None = None) -> list[RunView]:
        """Kickoff's runs in this repository (of one issue), in the order they were planned."""
        query = select(Run).where(Run.repository == f"{self.owner}/{self.repo}").order_by(Run.id)
        if issue is not None:
            query = query.where(Run.issue_number == issue)
        async with self.store.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [RunView(r.id, r.agent, r.kind, r.state, r.reason, r.branch, r.pr_number) for r in rows]

    async def ranking(self, issue: int) -> Ranking | None:
        """The ranking Kickoff published for the latest fan-out on `issue` (None until it has)."""
        query = (select(Trigger.ranking).where(Trigger.repository == f"{self.owner}/{self.repo}",
                                               Trigger.issue_number == issue, Trigger.ranking.is_not(None))
                 .order_by(Trigger.id.desc()).limit(1))
        async with self.store.sessions() as session:
            return Ranking.from_json(await session.scalar(query))

    async def runs_settled(self, count: int, issue: int | None = None) -> bool:
        """Whether `count` runs exist and every one has ended."""
        runs = await self.runs(issue)
        return len(runs) >= count and all(r.state in RunState.FINAL for r in runs)

    async def wait_for(
        self,
        condition: Callable[[], Awaitable[bool]],
        timeout: float,  # noqa: ASYNC109 - a deadline over many polls
        what: str,
        *,
        seen: Callable[[], Awaitable[str]] | None = None,
        interval: float = 0.1,
    ) -> None:
        """Poll `condition` until it holds; `StoryTimeout` naming `what` (and what was `seen`) after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if await condition():
                return
            if time.monotonic() > deadline:
                detail = ""
                if seen is not None:
                    with contextlib.suppress(Exception):
                        detail = f"; seen: {await seen()}"
                raise StoryTimeout(f"timed out after {timeout:g}s waiting for {what}{detail}")
            await asyncio.sleep(interval)


async def _pulls(sandbox: Sandbox, owner: str, name: str) -> list[PullView]:
    engine = sandbox.engine
    repo = engine.find_repo(owner, name)
    issues = sorted((i for i in repo.issues.values() if i.pull is not None), key=lambda i: i.number)
    branches = await engine.git(repo).refs("refs/heads/") if issues else {}  # one git call for every head
    out: list[PullView] = []
    for iss in issues:
        pr = iss.pull
        assert pr is not None
        head = branches.get(f"refs/heads/{pr.head_ref}") if iss.state == "open" else None
        head = head or pr.frozen_head_sha or ""
        checks: dict[str, CheckView] = {}
        for run in sorted(engine.state.check_runs.values(), key=lambda r: r.id):
            if run.repo_id == repo.id and run.head_sha == head:
                output = run.output or {}
                checks[run.name] = CheckView(
                    run.name, run.status, run.conclusion, str(output.get("title") or ""),
                    str(output.get("summary") or ""),
                )
        latest: dict[str, str] = {}
        for review in pr.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED"):
                latest[review.user.login] = review.state
        state = "merged" if pr.merged else iss.state
        out.append(PullView(
            number=iss.number, title=iss.title, author=iss.user.login, head_ref=pr.head_ref, head_sha=head,
            state=state, draft=pr.draft, approved="APPROVED" in latest.values(), checks=checks,
            labels=tuple(iss.labels),
        ))
    return out


async def _comments(sandbox: Sandbox, owner: str, name: str, number: int) -> list[CommentView]:
    engine = sandbox.engine
    repo = engine.find_repo(owner, name)
    iss = repo.issues.get(number)
    if iss is None:
        return []
    found = [engine.state.comments[i] for i in iss.comment_ids if i in engine.state.comments]
    return [CommentView(c.id, c.user.login, c.body) for c in found]


async def _read_file(sandbox: Sandbox, owner: str, name: str, ref: str, path: str) -> str | None:
    bare = sandbox.engine.git(sandbox.engine.find_repo(owner, name))
    commit = await bare.resolve(ref)
    entry = await bare.entry(commit, path) if commit else None
    return None if entry is None else (await bare.blob(entry.sha)).decode("utf-8", "replace")


async def _labels(sandbox: Sandbox, owner: str, name: str, number: int) -> list[str]:
    repo = sandbox.engine.find_repo(owner, name)
    iss = repo.issues.get(number)
    return list(iss.labels) if iss is not None else []


async def _stop_runners(app: FastAPI) -> None:
    """Stop the runners still going: in production they outlive Kickoff, here their workspace is about to go."""
    scheduler = getattr(app.state, "scheduler", None)
    if scheduler is None:
        return
    for backend in scheduler.backends.values():
        for run_id in list(backend.running()):
            with contextlib.suppress(Exception):
                await backend.cancel(run_id)


def _bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def kickoff_settings(root: Path, github_url: str, kickoff_url: str, creds: AppCredentials, **extra: Any) -> Settings:
    """Kickoff's process settings, built in code: SQLite in `root`, the sandbox as GitHub, the local runner."""
    values: dict[str, Any] = {
        "APP_ID": creds.app_id,
        "PRIVATE_KEY": creds.private_key_pem,
        "WEBHOOK_SECRET": creds.webhook_secret,
        "GITHUB_API_URL": github_url,
        "DATABASE_URL": f"sqlite:///{root / 'kickoff.db'}",
        "PUBLIC_URL": kickoff_url,
        "KICKOFF_RUNNER": "local",
        "KICKOFF_MAX_PARALLEL_RUNS": 3,
        "KICKOFF_POLL_SECONDS": 0.05,
        "KICKOFF_RETRY_BASE_SECONDS": 0.2,
        "KICKOFF_PLUGINS": "",
        "LOG_LEVEL": "INFO",
        **extra,
    }
    settings = Settings(_env_file=None, **values)
    settings.dashboard_token = None  # the demo's dashboard is open on loopback
    return settings


@asynccontextmanager
async def kickoff_world(
    root: Path,
    *,
    fidelity: bool = True,
    strict: bool = True,
    settings: Mapping[str, Any] | None = None,
    start_timeout: float = 20.0,
) -> AsyncIterator[World]:
    """Start the simulator and Kickoff on free loopback ports, the App registered with Kickoff's webhook URL.

    `settings` overrides `Settings` values, any section's (by their environment names).
    """
    from bot.web import check_local_sandbox, create_app  # imported late: it pulls in the whole service

    await asyncio.to_thread((root / "workspaces").mkdir, parents=True, exist_ok=True)
    sandbox = Sandbox(root / "github", retry_delays=(0.2, 0.5, 1.0, 2.0), fidelity=fidelity, strict=strict)
    try:
        async with SandboxServer(sandbox) as github_url:
            sock = _bind_loopback()
            kickoff_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            creds = await sandbox.aio.create_app(KICKOFF_APP_NAME, webhook_url=kickoff_url + WEBHOOK_PATH)
            tuning = {
                **HARNESS_SETTINGS,
                "KICKOFF_CLONE_URL": f"{github_url}/{{repo}}.git",  # the sandbox's git smart HTTP
                "KICKOFF_WORKSPACE_DIR": str(root / "workspaces"),
                **(settings or {}),
            }
            config = kickoff_settings(root, github_url, kickoff_url, creds, **tuning)
            await asyncio.to_thread(check_local_sandbox, config)  # one clear line, not a failed lifespan
            app = create_app(config)
            server = uvicorn.Server(uvicorn.Config(
                app, lifespan="on", log_config=None, access_log=False, ws="none", timeout_graceful_shutdown=5,
            ))
            task = asyncio.create_task(server.serve(sockets=[sock]), name="kickoff-uvicorn")
            try:
                deadline = time.monotonic() + start_timeout
                while not server.started:
                    if task.done():
                        task.result()
                        raise RuntimeError("Kickoff stopped during start-up")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Kickoff did not start within {start_timeout:g}s")
                    await asyncio.sleep(0.01)
                yield World(root, sandbox, github_url, kickoff_url, app, creds)
            finally:
                await _stop_runners(app)
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                sock.close()
    finally:
        await asyncio.to_thread(sandbox.close)


__all__ = [
    "AGENT_CHECK",
    "CI_CHECK",
    "QUEUE_CHECK",
    "CheckView",
    "CommentView",
    "PullView",
    "RunView",
    "StoryTimeout",
    "World",
    "kickoff_settings",
    "kickoff_world",
]
