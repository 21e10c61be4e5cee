"""What the dashboard, its JSON twins, `kickoff status` and `/metrics` show, read from the database in one place.

Every query reads a range of an index, never a whole table of history (tests/dashboard/test_query_plans.py): work
still owed (active runs, deliveries not done) is counted whole, finished work over the last `WINDOW` (24 hours),
and the labels say so. With a year of history the page costs what it costs with a day (docs/performance.md). The
outcome metrics, over 30 days, are `bot.dashboard.outcomes`, under the same rule.

Positions and check titles are what the queue service last wrote (`pull_requests.queue_check`, see
`bot.queue.store`). For a queue it has not reconciled yet, the order is computed with the queue's pure model
(`bot.queue.review_order`) from the stored columns (`eligible_since`, bumps, skips, holds, `/agent priority`), with
the live facts the database does not keep (priority labels, the repository's `queue.aging_hours`) at their defaults.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.model import Queue as QueueConfig
from bot.queue import Entry, Reason, Snapshot, review_order
from bot.slash_commands import PRIORITIES, Priority
from bot.store.db import Store
from bot.store.models import Delivery, DeliveryStatus, Installation, PullRequest, Repository, Run, RunState

RECENT_RUNS: Final = 20
"""Finished runs shown per repository (every active run is shown)."""
PROBLEM_DELIVERIES: Final = 50
WINDOW: Final = timedelta(hours=24)
"""Finished work (handled deliveries, finished runs) is counted over this window, not over all time."""
OWED_STATUSES: Final = tuple(s for s in DeliveryStatus.ALL if s != DeliveryStatus.DONE)
_DEFAULT_QUEUE: Final = QueueConfig()


@dataclass(frozen=True, slots=True)
class InstallationView:
    id: int
    account: str
    account_type: str
    suspended: bool
    repositories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One open pull request on a review queue; `position` is None while it is not in the review order."""

    repository: str
    base: str
    position: int | None
    number: int
    title: str
    agent: str | None
    check_title: str | None
    waiting: timedelta
    priority: Priority
    draft: bool
    held: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "base": self.base,
            "position": self.position,
            "number": self.number,
            "title": self.title,
            "agent": self.agent,
            "check_title": self.check_title,
            "waiting_seconds": int(self.waiting.total_seconds()),
            "priority": self.priority,
            "draft": self.draft,
            "held": self.held,
        }


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    repository: str
    issue_number: int
    task: str
    agent: str
    attempt: int
    state: str
    runner: str | None
    progress: str | None
    reason: str | None
    pr_number: int | None
    cost_usd: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: timedelta | None

    @property
    def active(self) -> bool:
        return self.state in RunState.ACTIVE

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repository": self.repository,
            "issue_number": self.issue_number,
            "task": self.task,
            "agent": self.agent,
            "attempt": self.attempt,
            "state": self.state,
            "runner": self.runner,
            "progress": self.progress,
            "reason": self.reason,
            "pr_number": self.pr_number,
            "cost_usd": self.cost_usd,
            "created_at": self.created_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_seconds": None if self.duration is None else round(self.duration.total_seconds(), 3),
        }


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    event: str
    action: str | None
    repository: str | None
    status: str
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None

    @property
    def key(self) -> str:
        return f"{self.event}.{self.action}" if self.action else self.event


@dataclass(frozen=True, slots=True)
class RepositoryView:
    name: str
    installation_id: int | None
    queue: tuple[QueueRow, ...]
    runs: tuple[RunRow, ...]

    @property
    def queue_length(self) -> int:
        return sum(1 for row in self.queue if row.position is not None)


@dataclass(frozen=True, slots=True)
class Overview:
    """The whole picture at `now`."""

    now: datetime
    installations: tuple[InstallationView, ...]
    repositories: tuple[RepositoryView, ...]
    deliveries: tuple[DeliveryRow, ...]
    delivery_counts: dict[str, int] = field(default_factory=dict)


def status_label(status: str) -> str:
    """A delivery status as the counts show it: `done` is counted over the last 24 hours only."""
    return f"{status} (24 h)" if status == DeliveryStatus.DONE else status


async def delivery_counts(session: AsyncSession, now: datetime) -> dict[str, int]:
    """Deliveries by status: every one still owed (pending, processing, retrying, dead), and the ones done among
    those received in the last `WINDOW` (`ix_deliveries_status_received`, two ranges)."""
    counts = {status: int(n) for status, n in await session.execute(
        select(Delivery.status, func.count()).where(Delivery.status.in_(OWED_STATUSES)).group_by(Delivery.status)
    )}
    done = await session.scalar(
        select(func.count()).where(Delivery.status == DeliveryStatus.DONE, Delivery.received_at >= now - WINDOW)
    )
    if done:
        counts[DeliveryStatus.DONE] = int(done)
    return counts


async def run_counts(session: AsyncSession, now: datetime) -> dict[str, int]:
    """Runs by state: every active run (`ix_runs_state`), and the runs finished in the last `WINDOW`
    (`ix_runs_finished`)."""
    counts = {state: int(n) for state, n in await session.execute(
        select(Run.state, func.count()).where(Run.state.in_(RunState.ACTIVE)).group_by(Run.state)
    )}
    # Counted here, not by GROUP BY: SQLite would rather walk all of `ix_runs_state` in order than sort a day's rows.
    counts.update(Counter(await session.scalars(select(Run.state).where(Run.finished_at >= now - WINDOW))))
    return counts


async def overview(store: Store, now: datetime, *, repo: str | None = None) -> Overview:
    """Installations, each repository's queue and runs, and the failed and dead deliveries."""
    async with store.sessions() as session:
        installations = list(await session.scalars(select(Installation).order_by(Installation.account_login)))
        repos = list(await session.scalars(select(Repository).order_by(Repository.full_name)))
        counts = await delivery_counts(session, now)
    queue = await queue_rows(store, now, repo=repo)
    runs = await run_rows(store, now, repo=repo, known=[r.full_name for r in repos])
    names = {r.full_name for r in repos} | {row.repository for row in queue} | {row.repository for row in runs}
    if repo is not None:
        names &= {repo}
    installation_of = {r.full_name: r.installation_id for r in repos}
    views = tuple(
        RepositoryView(
            name=name,
            installation_id=installation_of.get(name),
            queue=tuple(row for row in queue if row.repository == name),
            runs=tuple(row for row in runs if row.repository == name),
        )
        for name in sorted(names, key=str.lower)
    )
    installation_views = tuple(
        InstallationView(
            id=i.id,
            account=i.account_login,
            account_type=i.account_type,
            suspended=i.suspended,
            repositories=tuple(sorted(r.full_name for r in repos if r.installation_id == i.id)),
        )
        for i in installations
    )
    return Overview(
        now=now,
        installations=installation_views,
        repositories=views,
        deliveries=tuple(await problem_deliveries(store)),
        delivery_counts=counts,
    )


async def queue_rows(store: Store, now: datetime, *, repo: str | None = None) -> list[QueueRow]:
    """Open pull requests per repository and base, in review order first, then the others by number."""
    query = select(PullRequest).where(PullRequest.state == "open")
    if repo is not None:
        query = query.where(PullRequest.repository == repo)
    async with store.sessions() as session:
        pulls = list(await session.scalars(query.order_by(PullRequest.repository, PullRequest.base_ref)))
    groups: dict[tuple[str, str], list[PullRequest]] = {}
    for pull in pulls:
        groups.setdefault((pull.repository, pull.base_ref), []).append(pull)
    rows: list[QueueRow] = []
    for (repository, base), members in sorted(groups.items()):
        memories = {pull.number: _memory(pull.queue_check) for pull in members}
        if any(memory for memory in memories.values()):
            placed = {n: m["position"] for n, m in memories.items() if isinstance(m.get("position"), int)}
            # A fan-out's alternatives share their leader's position and follow it.
            order = sorted(placed, key=lambda n: (placed[n], memories[n].get("state") == "alternative", n))
        else:
            snapshot = Snapshot(repository, base, "", tuple(_entry(pull) for pull in members))
            order = [entry.number for entry in review_order(snapshot, _DEFAULT_QUEUE, now)]
        positions: dict[int, int] = {}
        slot = 0
        for number in order:  # one place per review slot: an alternative shares its leader's
            if slot == 0 or memories[number].get("state") != "alternative":
                slot += 1
            positions[number] = slot
        by_number = {pull.number: pull for pull in members}
        rest = sorted(number for number in by_number if number not in positions)
        for number in [*order, *rest]:
            pull = by_number[number]
            position = positions.get(number)
            since = pull.eligible_since if position is not None and pull.eligible_since else pull.created_at
            rows.append(
                QueueRow(
                    repository=repository,
                    base=base,
                    position=position,
                    number=number,
                    title=pull.title,
                    agent=pull.agent,
                    check_title=_check_title(memories[number]),
                    waiting=max(timedelta(0), now - since),
                    priority=_priority(pull.priority) or "normal",
                    draft=pull.draft,
                    held=pull.held,
                )
            )
    return rows


async def run_rows(
    store: Store, now: datetime, *, repo: str | None = None, recent: int = RECENT_RUNS, known: Sequence[str] = ()
) -> list[RunRow]:
    """Every active run, and the latest `recent` finished runs of each repository (those `known`, those with an
    active run, those with a run finished in the last `WINDOW`); newest first."""
    async with store.sessions() as session:
        active = select(Run).where(Run.state.in_(RunState.ACTIVE))
        if repo is not None:
            active = active.where(Run.repository == repo)
        runs = {run.id: run for run in await session.scalars(active)}
        if repo is not None:
            names = {repo}
        else:
            # Deduplicated here, not by DISTINCT: SQLite would walk all of `ix_runs_repository_id` for it.
            lately = select(Run.repository).where(Run.finished_at >= now - WINDOW)
            names = {*known, *(run.repository for run in runs.values()), *await session.scalars(lately)}
        for name in sorted(names):
            # The latest runs of the repository, newest first along `ix_runs_repository_id`, finished or not (a
            # filter on the state would let the planner read every finished run of it): enough to hold `recent`
            # finished ones next to its active runs.
            owed = sum(1 for run in runs.values() if run.repository == name)
            latest = select(Run).where(Run.repository == name).order_by(Run.id.desc()).limit(recent + owed)
            finished = [run for run in await session.scalars(latest) if run.state in RunState.FINAL]
            runs.update({run.id: run for run in finished[:recent]})
    return [_run_row(run, now) for run in sorted(runs.values(), key=lambda r: r.id, reverse=True)]


async def problem_deliveries(store: Store, limit: int = PROBLEM_DELIVERIES) -> list[DeliveryRow]:
    """Deliveries waiting for a retry and those parked as dead, newest first."""
    query = (
        select(Delivery)
        .where(Delivery.status.in_([DeliveryStatus.RETRYING, DeliveryStatus.DEAD]))
        .order_by(Delivery.received_at.desc(), Delivery.id)
        .limit(limit)
    )
    async with store.sessions() as session:
        rows = list(await session.scalars(query))
    return [
        DeliveryRow(
            id=d.id, event=d.event, action=d.action, repository=d.repository, status=d.status, attempts=d.attempts,
            received_at=d.received_at, next_attempt_at=d.next_attempt_at, last_error=d.last_error,
        )
        for d in rows
    ]


def _entry(pull: PullRequest) -> Entry:
    return Entry(
        number=pull.number,
        head_sha=pull.head_sha or "",
        title=pull.title,
        draft=pull.draft,
        priority=_priority(pull.priority),
        held=pull.held,
        unqueued=pull.unqueued,
        bumped_at=pull.bumped_at,
        let_ahead=pull.let_ahead,
        dequeued=_reason(pull.dequeued),
        eligible_since=pull.eligible_since,
    )


def _run_row(run: Run, now: datetime) -> RunRow:
    duration = None
    if run.started_at is not None:
        duration = max(timedelta(0), (run.finished_at or now) - run.started_at)
    return RunRow(
        id=run.id, repository=run.repository, issue_number=run.issue_number, task=run.task, agent=run.agent,
        attempt=run.attempt, state=run.state, runner=run.runner, progress=run.progress, reason=run.reason,
        pr_number=run.pr_number, cost_usd=run.cost_usd, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at, duration=duration,
    )


def _priority(value: str | None) -> Priority | None:
    for name in PRIORITIES:
        if value == name:
            return name
    return None


def _reason(value: str | None) -> Reason | None:
    try:
        return Reason(value) if value else None
    except ValueError:
        return Reason.MANUAL  # an unknown stored reason still takes it out of the order


def _memory(stored: str | None) -> dict[str, Any]:
    """What the queue service remembers of a pull request (`bot.queue.store.Memory`), as plain JSON."""
    if not stored:
        return {}
    try:
        data = json.loads(stored)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _check_title(memory: dict[str, Any]) -> str | None:
    """The title of the last `review-queue` check written."""
    check = memory.get("check")
    title = check.get("title") if isinstance(check, dict) else None
    return title if isinstance(title, str) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
