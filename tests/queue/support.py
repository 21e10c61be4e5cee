"""A queue world for service tests: a migrated database, the shared `FakeGitHub` holding the pull requests, CI,
reviews and branches, a clock, and helpers that read back what the queue wrote."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.github import CheckRunInfo, PullRequestInfo
from bot.github.models import CommitStatus, PullReview
from bot.queue.service import Outcome, QueueService
from bot.queue.store import QueueKey
from bot.root import compose
from bot.services import Services
from bot.store.db import Store
from bot.store.models import PullRequest, Run, RunState, Trigger
from tests.fake_github import FakeGitHub
from tests.support import make_settings

OWNER, REPO = "octo", "hello"
FULL = f"{OWNER}/{REPO}"
INSTALLATION = 7
APP_ID = 4242
CI_APP = 15368
BASE = "main"
KEY = QueueKey(INSTALLATION, FULL, BASE)
WRITES = ("create_check_run", "update_check_run", "update_branch", "merge_pull")


def sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    def __init__(self, services: Services, gh: FakeGitHub, clock: Clock) -> None:
        self.services = services
        self.gh = gh
        self.clock = clock
        self.service = QueueService(services)
        self._review_id = 0
        gh.branch_shas[(OWNER, REPO, BASE)] = sha("base-0")

    # Arranging.

    def config(self, text: str) -> None:
        self.gh.set_file(OWNER, REPO, ".github/kickoff.yml", text)

    @property
    def base_sha(self) -> str:
        return self.gh.branch_shas[(OWNER, REPO, BASE)]

    async def add_pr(
        self, number: int, *, kickoff: bool = True, draft: bool = False, files: tuple[str, ...] = (),
        ci: str | None = "success", labels: tuple[str, ...] = (), contains_base: bool = False,
        run: Run | None = None, rank: int | None = None,
    ) -> PullRequestInfo:
        head = sha(f"head-{number}-0")
        pull = PullRequestInfo(
            number=number, state="open", merged=False, draft=draft, title=f"Change {number}",
            author=self.gh.bot_login if kickoff else "human", head_ref=f"kickoff/{number}", head_sha=head,
            head_repo=FULL, base_ref=BASE, mergeable=True, html_url=f"https://github.com/{FULL}/pull/{number}",
        )
        self.gh.pulls[(OWNER, REPO, number)] = pull
        self.gh.pull_files[(OWNER, REPO, number)] = list(files) or [f"file{number}.py"]
        self.gh.labels[(OWNER, REPO, number)] = list(labels)
        if contains_base:
            self.gh.contains.add((OWNER, REPO, head, self.base_sha))
        if ci is not None:
            self.ci(number, ci)
        now = self.clock()
        async with self.services.store.sessions.begin() as session:
            session.add(PullRequest(
                installation_id=INSTALLATION, repository=FULL, number=number, agent="claude" if kickoff else None,
                title=pull.title, author=pull.author, head_ref=pull.head_ref, head_sha=head, base_ref=BASE,
                state="open", draft=draft, created_at=now, updated_at=now,
                run_id=run.id if run is not None else None, trigger_id=run.trigger_id if run is not None else None,
                rank=rank,
            ))
        return pull

    async def add_fanout(self, ranks: dict[int, int | None], **options: Any) -> int:
        """One trigger's fan-out: a run per pull request (number → its rank), as `bot.prs` records them. The
        trigger's id."""
        now = self.clock()
        async with self.services.store.sessions.begin() as session:
            trigger = Trigger(delivery_id=f"d-{min(ranks)}", seq=0, installation_id=INSTALLATION, repository=FULL,
                              issue_number=1, source="label", task="fix", sender="ann", created_at=now)
            session.add(trigger)
            await session.flush()
            runs = [Run(trigger_id=trigger.id, installation_id=INSTALLATION, repository=FULL, issue_number=1,
                        task="fix", agent="claude", attempt=attempt, state=RunState.SUCCEEDED, created_at=now,
                        updated_at=now) for attempt in range(1, len(ranks) + 1)]
            session.add_all(runs)
        for (number, rank), run in zip(sorted(ranks.items()), runs, strict=True):
            await self.add_pr(number, run=run, rank=rank, **options)
        return trigger.id

    def pull(self, number: int) -> PullRequestInfo:
        return self.gh.pulls[(OWNER, REPO, number)]

    def head(self, number: int) -> str:
        return self.pull(number).head_sha

    def ci(self, number: int, state: str, *, name: str = "ci", head: str | None = None) -> None:
        """The CI check on the pull request's head: pending, success or failure."""
        head = head or self.head(number)
        runs = [r for r in self.gh.foreign_check_runs.get((OWNER, REPO, head), []) if r.name != name]
        runs.append(CheckRunInfo(
            id=len(runs) + 1, name=name, head_sha=head, status="completed" if state != "pending" else "in_progress",
            conclusion=None if state == "pending" else state, app_id=CI_APP, title="", summary="",
        ))
        self.gh.foreign_check_runs[(OWNER, REPO, head)] = runs

    def status(self, number: int, context: str, state: str) -> None:
        key = (OWNER, REPO, self.head(number))
        self.gh.commit_statuses[key] = [
            *(s for s in self.gh.commit_statuses.get(key, []) if s.context != context), CommitStatus(context, state)
        ]

    def review(self, number: int, state: str = "APPROVED", who: str = "rev") -> None:
        self._review_id += 1
        self.gh.pull_reviews.setdefault((OWNER, REPO, number), []).append(PullReview(self._review_id, who, state))

    def push(self, number: int, *, ci: str | None = "success") -> str:
        """A new commit of work on the pull request."""
        pull = self.pull(number)
        new = sha(f"{pull.head_sha}-push")
        self.gh.pulls[(OWNER, REPO, number)] = _replace(pull, head_sha=new)
        if ci is not None:
            self.ci(number, ci)
        return new

    def close(self, number: int) -> None:
        """Closed without merging."""
        self.gh.pulls[(OWNER, REPO, number)] = _replace(self.pull(number), state="closed")

    def merge_by_hand(self, number: int) -> None:
        """Someone presses the merge button: the pull request closes, the base moves."""
        pull = self.pull(number)
        old = self.base_sha
        self.gh.branch_shas[(OWNER, REPO, BASE)] = sha(f"{old}+{pull.head_sha}")
        self.gh.pulls[(OWNER, REPO, number)] = _replace(pull, state="closed", merged=True)

    # Acting.

    async def reconcile(self) -> Outcome:
        return await self.service.reconcile(KEY)

    # Asserting.

    def writes(self, since: int = 0) -> list[tuple[str, tuple[Any, ...]]]:
        return [(verb, args) for verb, args in self.gh.calls[since:] if verb in WRITES]

    def checks(self) -> dict[int, dict[str, Any]]:
        """The latest `review-queue` check run on each pull request's current head."""
        found: dict[int, dict[str, Any]] = {}
        for (_o, _r, number), pull in self.gh.pulls.items():
            runs = [run for _, run in sorted(self.gh.check_runs.items())
                    if run["head_sha"] == pull.head_sha and run["name"] == "review-queue"]
            if runs:
                found[number] = runs[-1]
        return found

    def title_on(self, head: str) -> str:
        """The latest `review-queue` check's title on one commit."""
        runs = [run for _, run in sorted(self.gh.check_runs.items()) if run["head_sha"] == head]
        return str(runs[-1]["title"]) if runs else ""

    def titles(self) -> dict[int, str]:
        return {number: str(run["title"]) for number, run in sorted(self.checks().items())}

    def successes(self) -> list[int]:
        return [number for number, run in self.checks().items()
                if run["conclusion"] == "success" and not self.pull(number).merged]

    async def row(self, number: int) -> PullRequest:
        async with self.services.store.sessions() as session:
            found = await session.scalar(select(PullRequest).where(PullRequest.number == number))
        assert found is not None
        return found


def _replace(pull: PullRequestInfo, **changes: Any) -> PullRequestInfo:
    from dataclasses import replace

    return replace(pull, **changes)


@asynccontextmanager
async def world(database_url: str) -> AsyncIterator[World]:
    store = Store(database_url)
    await store.migrate()
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    gh = FakeGitHub(now=clock, permissions={"rev": "write"})  # `World.review`'s default reviewer may approve
    gh.set_file(OWNER, REPO, ".github/kickoff.yml", "queue: {}\n")
    services = compose(make_settings(database_url, APP_ID=APP_ID), store, github=gh, clock=clock)
    try:
        yield World(services, gh, clock)
    finally:
        await store.close()
