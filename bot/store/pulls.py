"""The `pull_requests` rows Kickoff keeps for its runs, and the delivery state of succeeded runs.

Opening is reserved before GitHub is asked: a row keyed by the run (`run_id` is unique) is inserted first, with a
placeholder number (minus the run id) and state `opening`, so a retried report, a replayed delivery or a second
worker never opens a second pull request for a run. The queue reads only rows in `open`.

Delivery of a succeeded run (opening its pull request, or commenting on the pull request a follow-up pushed to) is
tracked in `runs.progress`: `finished` (the runner's last word) → `delivering` (claimed by one worker, with one
guarded UPDATE) → `delivered`.

Both claims, the delivery (`runs.worker_id`) and the reservation (`pull_requests.worker_id`), name their worker, and a
dead worker's (bot.store.workers) is taken over at once. A claim that names no worker (taken by a process without
one, or before workers were recorded) is taken over once it is older than `STALE_CLAIM`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, Result, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from bot.store.db import Store
from bot.store.models import PullRequest, Run, RunState, RunTransition, utcnow
from bot.store.workers import alive

OPENING: Final = "opening"
OPEN: Final = "open"
CLOSED: Final = "closed"
MERGED: Final = "merged"
STALE_CLAIM: Final = timedelta(minutes=5)
FINISHED: Final = "finished"
DELIVERING: Final = "delivering"
DELIVERED: Final = "delivered"
MAX_REASON_CHARS: Final = 2000


class OpenedPull(Protocol):
    """What `opened` records of the pull request GitHub opened (`bot.github.PullRequestInfo` has it); the store is
    below the gateway, so it names only what it reads."""

    @property
    def number(self) -> int: ...

    @property
    def title(self) -> str: ...

    @property
    def author(self) -> str: ...

    @property
    def head_sha(self) -> str: ...

    @property
    def draft(self) -> bool: ...


def _held_by(column: InstrumentedAttribute[int | None], worker_id: int | None) -> ColumnElement[bool]:
    """SQL: `column` still names `worker_id` (the owner as read, so of two workers taking over only one wins)."""
    return column.is_(None) if worker_id is None else column == worker_id


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


def _abandoned(worker_id: InstrumentedAttribute[int | None], updated_at: InstrumentedAttribute[datetime], now: datetime,
               timeout: timedelta) -> ColumnElement[bool]:
    """SQL: a claim whose worker is dead, or that names none and is older than `STALE_CLAIM`."""
    return or_(
        worker_id.is_not(None) & ~alive(worker_id, now - timeout),
        worker_id.is_(None) & (updated_at < now - STALE_CLAIM),
    )


class PullRequestStore:
    """Rows of `pull_requests` and the delivery columns of `runs`. `worker_timeout`: a worker silent this long is
    dead (`KICKOFF_WORKER_TIMEOUT_SECONDS`)."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow,
                 worker_timeout: timedelta = timedelta(seconds=10)) -> None:
        self.store = store
        self.clock = clock
        self.worker_timeout = worker_timeout

    async def for_run(self, run_id: int) -> PullRequest | None:
        async with self.store.sessions() as session:
            return await session.scalar(select(PullRequest).where(PullRequest.run_id == run_id))

    async def by_number(self, repository: str, number: int) -> PullRequest | None:
        async with self.store.sessions() as session:
            return await session.scalar(
                select(PullRequest).where(PullRequest.repository == repository, PullRequest.number == number)
            )

    async def siblings(self, trigger_id: int, *, excluding: int | None = None) -> list[PullRequest]:
        """The pull requests other runs of a trigger opened, still open, in the order they opened."""
        query = select(PullRequest).where(
            PullRequest.trigger_id == trigger_id, PullRequest.state == OPEN, PullRequest.run_id.is_not(None)
        )
        if excluding is not None:
            query = query.where(PullRequest.id != excluding)
        async with self.store.sessions() as session:
            return list(await session.scalars(query.order_by(PullRequest.number)))

    async def sibling_merged(self, trigger_id: int) -> bool:
        """Whether a pull request of this trigger's fan-out has merged."""
        query = select(PullRequest.id).where(PullRequest.trigger_id == trigger_id, PullRequest.state == MERGED)
        async with self.store.sessions() as session:
            return (await session.scalars(query.limit(1))).first() is not None

    async def open_on_base(self, repository: str, base_ref: str) -> list[PullRequest]:
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(PullRequest).where(
                    PullRequest.repository == repository, PullRequest.base_ref == base_ref,
                    PullRequest.state == OPEN, PullRequest.run_id.is_not(None),
                ).order_by(PullRequest.number)
            )
            return list(rows)

    async def open_with_head(self, repository: str, head_sha: str) -> list[PullRequest]:
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(PullRequest).where(
                    PullRequest.repository == repository, PullRequest.head_sha == head_sha,
                    PullRequest.state == OPEN, PullRequest.run_id.is_not(None),
                )
            )
            return list(rows)

    async def active_runs_on(self, repository: str, number: int) -> int:
        """Runs queued or on a runner that work on pull request `number` (follow-ups and fixes)."""
        async with self.store.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Run).where(
                    Run.repository == repository, Run.pr_number == number, Run.kind != "new",
                    Run.state.in_(RunState.ACTIVE),
                )
            )
        return int(count or 0)

    async def active_runs_of_trigger(self, trigger_id: int) -> int:
        async with self.store.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Run).where(
                    Run.trigger_id == trigger_id,
                    or_(Run.state.in_(RunState.ACTIVE),
                        (Run.state == RunState.SUCCEEDED) & (Run.progress != DELIVERED)),
                )
            )
        return int(count or 0)

    async def reserve(
        self, run: Run, *, head_ref: str, base_ref: str, worker_id: int | None = None
    ) -> tuple[PullRequest, bool, bool]:
        """The run's row; whether this caller (worker `worker_id`) may open the pull request (False: another did
        or does); and whether the row is new (True: no earlier attempt can have opened a pull request for it)."""
        now = self.clock()
        row = PullRequest(
            installation_id=run.installation_id, repository=run.repository, number=-run.id, run_id=run.id,
            trigger_id=run.trigger_id, issue_number=run.issue_number, agent=run.agent, title="", head_ref=head_ref,
            base_ref=base_ref, state=OPENING, worker_id=worker_id, created_at=now, updated_at=now,
        )
        try:
            async with self.store.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            existing = await self.for_run(run.id)
            if existing is None:  # pragma: no cover - a conflicting row cannot vanish
                raise
            if existing.state != OPENING:
                return existing, False, False
            # The worker that reserved it died: take over (its pull request, if it got that far, is adopted).
            async with self.store.sessions.begin() as session:
                taken = await session.execute(
                    update(PullRequest)
                    .where(PullRequest.id == existing.id, PullRequest.state == OPENING,
                           _held_by(PullRequest.worker_id, existing.worker_id),
                           _abandoned(PullRequest.worker_id, PullRequest.updated_at, now, self.worker_timeout))
                    .values(updated_at=now, worker_id=worker_id)
                    .execution_options(synchronize_session=False)
                )
            return existing, _rowcount(taken) == 1, False
        return row, True, True

    async def opened(self, row_id: int, pull: OpenedPull) -> None:
        now = self.clock()
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(PullRequest)
                .where(PullRequest.id == row_id)
                .values(number=pull.number, state=OPEN, title=pull.title[:1000], author=pull.author,
                        head_sha=pull.head_sha, draft=pull.draft, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    async def set_body(self, row_id: int, *, digest: str | None, context: str | None = None) -> None:
        """The digest of the body Kickoff last wrote (None: unknown, e.g. an adopted pull request), and what its
        brief was rendered from (kept unless given)."""
        values: dict[str, Any] = {"body_sha256": digest, "updated_at": self.clock()}
        if context is not None:
            values["brief_context"] = context
        await self._set(row_id, values)

    async def _set(self, row_id: int, values: dict[str, Any]) -> None:
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(PullRequest).where(PullRequest.id == row_id).values(**values)
                .execution_options(synchronize_session=False)
            )

    async def get(self, row_id: int) -> PullRequest | None:
        async with self.store.sessions() as session:
            return await session.get(PullRequest, row_id)

    async def release(self, row_id: int) -> None:
        """Forget a reservation whose pull request GitHub refused."""
        async with self.store.sessions.begin() as session:
            await session.execute(delete(PullRequest).where(PullRequest.id == row_id, PullRequest.state == OPENING))

    async def set_check(self, row_id: int, check_run_id: int, head_sha: str | None = None) -> None:
        values: dict[str, Any] = {"agent_check_run_id": check_run_id, "updated_at": self.clock()}
        if head_sha is not None:
            values["head_sha"] = head_sha
        await self._set(row_id, values)

    async def track(
        self, repository: str, number: int, *, state: str | None = None, head_sha: str | None = None,
        draft: bool | None = None, title: str | None = None,
    ) -> PullRequest | None:
        """Record what a `pull_request` event says of a known pull request; the row, or None when unknown."""
        now = self.clock()
        values: dict[str, Any] = {"updated_at": now}
        if state is not None:
            values["state"] = state
            values["merged_at"] = now if state == MERGED else None
            values["closed_at"] = None if state == OPEN else now
        if head_sha is not None:
            values["head_sha"] = head_sha
        if draft is not None:
            values["draft"] = draft
        if title is not None:
            values["title"] = title[:1000]
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(PullRequest)
                .where(PullRequest.repository == repository, PullRequest.number == number)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                return None
        return await self.by_number(repository, number)

    async def take_fix_attempt(self, row: PullRequest, limit: int) -> int | None:
        """Count one more automatic fix of a pull request if it has attempts left and nobody counted first."""
        if row.fix_attempts >= limit:
            return None
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(PullRequest)
                .where(PullRequest.id == row.id, PullRequest.fix_attempts == row.fix_attempts)
                .values(fix_attempts=row.fix_attempts + 1, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )
        return row.fix_attempts + 1 if _rowcount(result) == 1 else None

    async def give_up_fixing(self, row: PullRequest, limit: int) -> bool:
        """Mark a pull request's fix attempts spent and said so (`limit + 1`); True only for the first caller."""
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(PullRequest)
                .where(PullRequest.id == row.id, PullRequest.fix_attempts == limit)
                .values(fix_attempts=limit + 1, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )
        return _rowcount(result) == 1

    async def undelivered(self, limit: int = 50) -> list[Run]:
        """Succeeded runs whose pull request (or follow-up comment) is not out yet, oldest first: not claimed, or
        claimed by a dead worker."""
        now = self.clock()
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(Run)
                .where(
                    Run.state == RunState.SUCCEEDED,
                    or_(Run.progress == FINISHED,
                        (Run.progress == DELIVERING)
                        & _abandoned(Run.worker_id, Run.updated_at, now, self.worker_timeout)),
                )
                .order_by(Run.finished_at, Run.id)
                .limit(limit)
            )
            return list(rows)

    async def claim(self, run: Run, worker_id: int | None = None) -> bool:
        """Take a run's delivery for worker `worker_id` (one worker wins); a dead worker's claim is taken over."""
        now = self.clock()
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(Run)
                .where(
                    Run.id == run.id, Run.state == RunState.SUCCEEDED,
                    or_(Run.progress == FINISHED,
                        (Run.progress == DELIVERING) & _held_by(Run.worker_id, run.worker_id)
                        & _abandoned(Run.worker_id, Run.updated_at, now, self.worker_timeout)),
                )
                .values(progress=DELIVERING, worker_id=worker_id, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return _rowcount(result) == 1

    async def unclaim(self, run_id: int) -> None:
        """Give a delivery back after a transient failure, for the next pass."""
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(Run).where(Run.id == run_id, Run.progress == DELIVERING)
                .values(progress=FINISHED)
                .execution_options(synchronize_session=False)
            )

    async def delivered(self, run_id: int, *, pr_number: int | None = None, reason: str | None = None) -> None:
        values: dict[str, Any] = {"progress": DELIVERED, "updated_at": self.clock()}
        if pr_number is not None:
            values["pr_number"] = pr_number
        if reason is not None:
            values["reason"] = reason[:MAX_REASON_CHARS]
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(Run).where(Run.id == run_id).values(**values).execution_options(synchronize_session=False)
            )

    async def fail_delivery(self, run_id: int, reason: str) -> bool:
        """End a succeeded run `failed` because its pull request could not be opened (GitHub's reason).

        The one step out of a final state: the run's result never reached a reviewer, so it did not succeed.
        """
        now = self.clock()
        reason = reason[:MAX_REASON_CHARS]
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.state == RunState.SUCCEEDED)
                .values(state=RunState.FAILED, reason=reason, progress=DELIVERED, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                return False
            session.add(RunTransition(run_id=run_id, from_state=RunState.SUCCEEDED, to_state=RunState.FAILED,
                                      reason=reason, at=now))
        return True

    async def runs_of(self, run_ids: Sequence[int]) -> dict[int, Run]:
        if not run_ids:
            return {}
        async with self.store.sessions() as session:
            rows = await session.scalars(select(Run).where(Run.id.in_(list(run_ids))))
            return {run.id: run for run in rows}
