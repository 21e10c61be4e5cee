"""Runs in the database: guarded state changes (each one recorded in `run_transitions`) and the queries around them.

Every state change is one UPDATE guarded by `WHERE state = :from`, so of two workers moving the same run only one
succeeds; the loser learns it from the return value. Claiming a run for a runner also checks the parallel limits
in the same statement (and, on PostgreSQL, under an advisory lock), so several schedulers never exceed them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, CursorResult, Result, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from bot import messages
from bot.logs import forget_run_secrets
from bot.runspec import RunResult
from bot.store.db import Store
from bot.store.lifecycle import (
    ON_RUNNER,
    InvalidTransition,
    branch_problem,
    check_transition,
    is_final,
    path_to,
    state_for_outcome,
)
from bot.store.models import (
    JUDGE_ATTEMPT,
    JUDGE_KIND,
    PullRequest,
    Run,
    RunState,
    RunTransition,
    Trigger,
    TriggerSnapshot,
    utcnow,
)
from bot.store.workers import alive

# Any constant works: it names "the run-claim lock" among PostgreSQL advisory locks.
CLAIM_LOCK_KEY: Final = 0x6B69636B  # "kick"
MAX_REASON_CHARS: Final = 2000
MAX_TRANSCRIPT_CHARS: Final = 32_000
"""The end of an agent's transcript a stored result keeps: what the pull request's body reads of it (its last 8,000
characters once cleaned), whatever a runner reports (docs/operations.md, "What is kept, and for how long")."""
_MOVE_RETRIES: Final = 5
R = TypeVar("R")


class RunNotFound(LookupError):
    pass


class _Lost(Exception):
    """A guarded UPDATE matched nothing: someone else moved the run first."""


@dataclass(frozen=True, slots=True)
class OnRunner:
    """How many runs hold a runner (starting or running), overall and per repository."""

    total: int
    by_repo: Mapping[str, int]


def secret_hash(secret: str) -> str:
    """What is stored of a run's report secret: its sha256, so the database alone cannot forge reports."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


class _Anyone:
    """`move(holder=ANYONE)`: whichever worker holds the run."""


ANYONE: Final = _Anyone()


def _held_by(worker_id: int | None) -> ColumnElement[bool]:
    return Run.worker_id.is_(None) if worker_id is None else Run.worker_id == worker_id


def _reason(reason: str | None) -> str | None:
    return None if reason is None else reason[:MAX_REASON_CHARS]


class RunStore:
    """The runs table for the scheduler, the report endpoint, the verbs and the tracking comment."""

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime] = utcnow, succeeded: asyncio.Event | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        # Set when this store moves a run to `succeeded`: the pull-request opener's wake-up (bot.worker). The
        # durable record is the run itself (`succeeded` with progress `finished`), so a lost wake-up costs a tick.
        self.succeeded = succeeded

    async def get(self, run_id: int) -> Run | None:
        async with self.store.sessions() as session:
            return await session.get(Run, run_id)

    async def require(self, run_id: int) -> Run:
        run = await self.get(run_id)
        if run is None:
            raise RunNotFound(f"no run {run_id}")
        return run

    async def state_of(self, run_id: int) -> str | None:
        async with self.store.sessions() as session:
            return await session.scalar(select(Run.state).where(Run.id == run_id))

    async def states(self, run_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """run id → (state, progress)."""
        if not run_ids:
            return {}
        async with self.store.sessions() as session:
            rows = await session.execute(select(Run.id, Run.state, Run.progress).where(Run.id.in_(list(run_ids))))
            return {run_id: (state, progress) for run_id, state, progress in rows}

    async def candidates(self, limit: int = 1000) -> list[Run]:
        """Runs waiting for a runner (`queued` or `waiting`), oldest first."""
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(Run)
                .where(Run.state.in_((RunState.QUEUED, RunState.WAITING)))
                .order_by(Run.created_at, Run.id)
                .limit(limit)
            )
            return list(rows)

    async def on_runner(self) -> OnRunner:
        async with self.store.sessions() as session:
            rows = await session.execute(
                select(Run.repository, func.count()).where(Run.state.in_(ON_RUNNER)).group_by(Run.repository)
            )
            by_repo = {repo: int(count) for repo, count in rows}
        return OnRunner(sum(by_repo.values()), by_repo)

    async def held_by(self, runner: str) -> list[Run]:
        """Runs that a runner of this backend holds, according to the database."""
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(Run).where(Run.state.in_(ON_RUNNER), Run.runner == runner).order_by(Run.id)
            )
            return list(rows)

    async def open_kickoff_prs(self, repository: str) -> int:
        """Review slots Kickoff pull requests of `repository` take: open rows of `pull_requests` that a run opened
        (and those being opened right now), a fan-out's (one trigger's) counting once, since its siblings take one
        review slot in the queue; kept current from `pull_request` events by `bot.prs`."""
        slot = func.coalesce(PullRequest.trigger_id, -PullRequest.id)  # a row without a trigger is its own slot
        async with self.store.sessions() as session:
            count = await session.scalar(
                select(func.count(func.distinct(slot)))
                .select_from(PullRequest)
                .where(
                    PullRequest.repository == repository,
                    PullRequest.state.in_(("open", "opening")),
                    PullRequest.run_id.is_not(None),
                )
            )
        return int(count or 0)

    async def cost_since(self, repository: str, since: datetime) -> float:
        """What the runs of `repository` that finished at or after `since` cost, in US dollars (runs whose agent
        reports no cost count nothing): one range of `ix_runs_repository_finished`."""
        async with self.store.sessions() as session:
            total = await session.scalar(
                select(func.sum(Run.cost_usd)).where(Run.repository == repository, Run.finished_at >= since)
            )
        return float(total or 0.0)

    async def trigger(self, trigger_id: int) -> Trigger | None:
        async with self.store.sessions() as session:
            return await session.get(Trigger, trigger_id)

    async def snapshot(self, trigger_id: int) -> tuple[str, str] | None:
        """The trigger's stored snapshot text and its sha256 (bot.runs.snapshot), if it has one."""
        async with self.store.sessions() as session:
            row = await session.get(TriggerSnapshot, trigger_id)
            return (row.body, row.sha256) if row is not None else None

    async def latest_trigger(self, repository: str, issue_number: int) -> Trigger | None:
        async with self.store.sessions() as session:
            return await session.scalar(
                select(Trigger)
                .where(Trigger.repository == repository, Trigger.issue_number == issue_number)
                .order_by(Trigger.created_at.desc(), Trigger.id.desc())
                .limit(1)
            )

    async def runs_of_trigger(self, trigger_id: int) -> list[Run]:
        async with self.store.sessions() as session:
            rows = await session.scalars(select(Run).where(Run.trigger_id == trigger_id).order_by(Run.id))
            return list(rows)

    async def runs_on_issue(
        self, repository: str, number: int, *, states: Sequence[str] | None = None, limit: int = 50
    ) -> list[Run]:
        """The latest runs of an issue or pull request (also those that opened or work on that pull request),
        oldest first."""
        query = select(Run).where(
            Run.repository == repository, or_(Run.issue_number == number, Run.pr_number == number)
        )
        if states is not None:
            query = query.where(Run.state.in_(list(states)))
        async with self.store.sessions() as session:
            rows = await session.scalars(query.order_by(Run.id.desc()).limit(limit))
            return sorted(rows, key=lambda r: r.id)

    async def triggers_changed_since(self, since: datetime) -> list[int]:
        async with self.store.sessions() as session:
            rows = await session.scalars(select(Run.trigger_id).where(Run.updated_at >= since).distinct())
            return sorted(rows)

    async def transitions(self, run_id: int) -> list[RunTransition]:
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(RunTransition).where(RunTransition.run_id == run_id).order_by(RunTransition.id)
            )
            return list(rows)

    async def transition(
        self,
        run_id: int,
        to: str,
        reason: str | None = None,
        *,
        from_state: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move a run from `from_state` (default: its state now) to `to`; whether it moved.

        Raises `InvalidTransition` when the lifecycle forbids the step and `RunNotFound` for an unknown run.
        False means the run was no longer in `from_state`: another worker moved it first.
        """
        if from_state is None:
            from_state = await self.state_of(run_id)
            if from_state is None:
                raise RunNotFound(f"no run {run_id}")
        check_transition(from_state, to)
        start = from_state
        try:
            await self.store.write(lambda conn: self._step(conn, run_id, start, to, reason, values or {}))
        except _Lost:
            return False
        if is_final(to):
            forget_run_secrets(run_id)
        if to == RunState.SUCCEEDED and self.succeeded is not None:
            self.succeeded.set()
        return True

    async def move(
        self, run_id: int, to: str, reason: str | None = None, *, values: Mapping[str, Any] | None = None,
        holder: int | _Anyone | None = ANYONE,
    ) -> bool:
        """Move a run to `to` from wherever it is (via `running` when it is `starting`); False once it is final,
        or, with `holder`, once the run is no longer that worker's (taken over: its new holder decides).

        Used where a run ends for reasons outside the scheduler's control (a report, an exit, a cancel), so a
        concurrent change is retried rather than lost.
        """
        for _ in range(_MOVE_RETRIES):
            current = await self.state_of(run_id)
            if current is None:
                raise RunNotFound(f"no run {run_id}")
            if current == to or is_final(current):
                return False
            if not isinstance(holder, _Anyone) and (current not in ON_RUNNER or not await self._holds(run_id, holder)):
                return False
            steps = path_to(current, to)

            def walk(conn: Connection, previous: str = current, steps: Sequence[str] = steps) -> None:
                for index, step in enumerate(steps):
                    last = index == len(steps) - 1
                    self._step(conn, run_id, previous, step, reason if last else None, (values or {}) if last else {},
                               holder=holder)
                    previous = step

            try:
                await self.store.write(walk)
            except _Lost:
                continue
            if is_final(to):
                forget_run_secrets(run_id)  # its token and report secret are dead: stop redacting them
            if to == RunState.SUCCEEDED and self.succeeded is not None:
                self.succeeded.set()
            return True
        raise InvalidTransition(None, to)  # the run kept changing under us; should not happen

    async def _holds(self, run_id: int, worker_id: int | None) -> bool:
        async with self.store.sessions() as session:
            held = await session.scalar(select(Run.id).where(Run.id == run_id, _held_by(worker_id)))
        return held is not None

    async def claim(
        self,
        run: Run,
        *,
        global_limit: int,
        repo_limit: int,
        busy_global: int = 0,
        busy_repo: int = 0,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move a queued or waiting run to `starting` if it still is, and if the parallel limits leave room.

        `busy_*` count runner processes this worker still has alive for runs already final in the database.
        """
        check_transition(run.state, RunState.STARTING)

        def take(conn: Connection) -> bool:
            self.lock_claims(conn)
            return self.claim_in(conn, run, global_limit=global_limit, repo_limit=repo_limit,
                                 busy_global=busy_global, busy_repo=busy_repo, values=values)

        return await self.store.write(take)

    async def claim_batch(self, work: Callable[[Connection], R]) -> R:
        """Run `work`, which claims through `claim_in`, as one transaction holding the claim lock: a whole fan-out's
        claims at once, off the event loop (on SQLite on the writer's thread; on PostgreSQL each statement awaited).
        """
        def batch(conn: Connection) -> R:
            self.lock_claims(conn)
            return work(conn)

        return await self.store.write(batch, long=True)

    def lock_claims(self, conn: Connection) -> None:
        """Serialise claims across workers until this transaction ends (on SQLite its write lock does)."""
        if self.store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})

    def claim_in(
        self,
        conn: Connection,
        run: Run,
        *,
        global_limit: int,
        repo_limit: int,
        busy_global: int = 0,
        busy_repo: int = 0,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """`claim`, inside a transaction that holds the claim lock (`lock_claims`): the guarded UPDATE counts the
        runs holding a slot, this transaction's earlier claims included."""
        check_transition(run.state, RunState.STARTING)
        everywhere, here = aliased(Run), aliased(Run)
        total = select(func.count()).select_from(everywhere).where(everywhere.state.in_(ON_RUNNER)).scalar_subquery()
        in_repo = (
            select(func.count())
            .select_from(here)
            .where(here.repository == run.repository, here.state.in_(ON_RUNNER))
            .scalar_subquery()
        )
        now = self.clock()
        stmt = (
            update(Run)
            .where(
                Run.id == run.id,
                Run.state == run.state,
                total + busy_global < global_limit,
                in_repo + busy_repo < repo_limit,
            )
            .values(state=RunState.STARTING, reason=None, started_at=now, updated_at=now, **(values or {}))
        )
        if _rowcount(conn.execute(stmt)) != 1:
            return False
        conn.execute(insert(RunTransition).values(run_id=run.id, from_state=run.state, to_state=RunState.STARTING,
                                                  at=now))
        return True

    def state_in(self, conn: Connection, run_id: int) -> str | None:
        """`state_of`, inside a transaction."""
        return conn.execute(select(Run.state).where(Run.id == run_id)).scalar()

    def on_runner_in(self, conn: Connection) -> OnRunner:
        """`on_runner`, inside a transaction."""
        rows = conn.execute(
            select(Run.repository, func.count()).where(Run.state.in_(ON_RUNNER)).group_by(Run.repository))
        by_repo = {repo: int(count) for repo, count in rows}
        return OnRunner(sum(by_repo.values()), by_repo)

    async def finish(self, run_id: int, result: RunResult) -> bool:
        """Record a runner's result and move the run to the state of its outcome; False if it was already final.

        A result naming another branch than the run's is not recorded: the run fails, saying why.
        """
        run = await self.get(run_id)
        problem = branch_problem(run, result) if run is not None else None
        if problem is not None:
            return await self.move(run_id, RunState.FAILED, problem)
        usage = result.usage
        if len(result.transcript_tail) > MAX_TRANSCRIPT_CHARS:
            result = result.model_copy(update={"transcript_tail": result.transcript_tail[-MAX_TRANSCRIPT_CHARS:]})
        values = {
            "result": result.model_dump_json(),
            "cost_usd": usage.cost_usd,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "progress": "finished",
        }
        return await self.move(run_id, state_for_outcome(result.outcome), result.reason, values=values)

    async def update(self, run_id: int, **values: Any) -> None:
        """Change fields that are not the state (progress, runner reference, …)."""
        stmt = update(Run).where(Run.id == run_id).values(updated_at=self.clock(), **values)
        await self.store.write(lambda conn: conn.execute(stmt))

    async def set_progress(self, run_id: int, progress: str) -> None:
        stmt = (
            update(Run)
            .where(Run.id == run_id, Run.state.in_(ON_RUNNER))
            .values(progress=progress, updated_at=self.clock())
        )
        await self.store.write(lambda conn: conn.execute(stmt))

    async def explain_wait(self, run_id: int, reason: str | None) -> bool:
        """Say why a queued or waiting run has not started; writes (and bumps `updated_at`) only on a change."""
        reason = _reason(reason)
        unchanged = Run.reason.is_(None) if reason is None else Run.reason == reason
        async with self.store.sessions.begin() as session:
            result = await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.state.in_((RunState.QUEUED, RunState.WAITING)), ~unchanged)
                .values(reason=reason, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def add_attempt(self, run: Run, reason: str) -> Run | None:
        """A new queued attempt of `run` under the same trigger; None if a later attempt already exists, or `run` is
        a judge run (its fan-out is ranked once, on evidence when the judge failed)."""
        if run.kind == JUDGE_KIND:
            return None
        now = self.clock()
        try:
            async with self.store.sessions.begin() as session:
                later = await session.scalar(
                    select(func.max(Run.attempt)).where(Run.trigger_id == run.trigger_id, Run.agent == run.agent)
                )
                if later is not None and later > run.attempt:
                    return None
                followup = run.kind == "followup"
                new = Run(
                    trigger_id=run.trigger_id,
                    installation_id=run.installation_id,
                    repository=run.repository,
                    issue_number=run.issue_number,
                    task=run.task,
                    agent=run.agent,
                    attempt=run.attempt + 1,
                    kind=run.kind,
                    state=RunState.QUEUED,
                    branch=run.branch if followup else None,
                    base_branch=run.base_branch if followup else None,
                    pr_number=run.pr_number if followup else None,
                    created_at=now,
                    updated_at=now,
                )
                session.add(new)
                await session.flush()
                session.add(RunTransition(run_id=new.id, from_state=None, to_state=RunState.QUEUED,
                                          reason=_reason(reason), at=now))
        except IntegrityError:
            return None  # another worker added the same attempt
        return new

    async def add_judge(self, trigger: Trigger, agent: str, *, base_branch: str | None) -> Run | None:
        """Queue the judge run of `trigger`'s fan-out (agent `agent`, attempt `JUDGE_ATTEMPT`); None when it exists
        already (the unique (trigger, agent, attempt) makes a second one fail, whoever tries)."""
        now = self.clock()
        try:
            async with self.store.sessions.begin() as session:
                existing = await session.scalar(
                    select(Run.id).where(Run.trigger_id == trigger.id, Run.kind == JUDGE_KIND).limit(1))
                if existing is not None:
                    return None
                new = Run(
                    trigger_id=trigger.id,
                    installation_id=trigger.installation_id,
                    repository=trigger.repository,
                    issue_number=trigger.issue_number,
                    task=trigger.task,
                    agent=agent,
                    attempt=JUDGE_ATTEMPT,
                    kind=JUDGE_KIND,
                    state=RunState.QUEUED,
                    reason=messages.RUN_JUDGE_QUEUED,
                    base_branch=base_branch,
                    created_at=now,
                    updated_at=now,
                )
                session.add(new)
                await session.flush()
                session.add(RunTransition(run_id=new.id, from_state=None, to_state=RunState.QUEUED,
                                          reason=_reason(messages.RUN_JUDGE_QUEUED), at=now))
        except IntegrityError:
            return None
        return new

    async def attach_runner(self, run_id: int, ref: str, worker_id: int | None) -> bool:
        """Record the runner of a run this worker started; False when the run is no longer this worker's (it was
        taken over, being thought dead, or ended meanwhile): the caller stops the runner it just started."""
        stmt = (
            update(Run)
            .where(Run.id == run_id, Run.state.in_(ON_RUNNER), _held_by(worker_id))
            .values(runner_ref=ref, updated_at=self.clock())
        )
        return await self.store.write(lambda conn: _rowcount(conn.execute(stmt)) == 1)

    async def orphaned(self, cutoff: datetime, *, unowned: bool = False) -> list[Run]:
        """Runs on a runner (`starting`, `running`) whose worker is dead: stopped, or silent since `cutoff`; with
        `unowned`, also those no worker holds (claimed before workers were recorded, or by a process without one)."""
        dead = Run.worker_id.is_not(None) & ~alive(Run.worker_id, cutoff)
        held = or_(dead, Run.worker_id.is_(None)) if unowned else dead
        async with self.store.sessions() as session:
            rows = await session.scalars(select(Run).where(Run.state.in_(ON_RUNNER), held).order_by(Run.id))
            return list(rows)

    async def adopt(self, run: Run, worker_id: int | None) -> bool:
        """Take over a run from its dead worker (`run.worker_id` as read); False when another worker was first."""
        stmt = (
            update(Run)
            .where(Run.id == run.id, Run.state == run.state, _held_by(run.worker_id))
            .values(worker_id=worker_id, updated_at=self.clock())
        )
        return await self.store.write(lambda conn: _rowcount(conn.execute(stmt)) == 1)

    async def requeue_unstarted(self, run: Run, *, reason: str, cap: int, give_up: str) -> str | None:
        """Put a `starting` run that never got a runner back in `queued` (its dead worker's claim undone), or, once
        it went back `cap` times, fail it with `give_up`. The state it went to; None when another worker moved it
        first."""
        now = self.clock()
        count = (
            select(func.count())
            .select_from(RunTransition)
            .where(RunTransition.run_id == run.id, RunTransition.from_state == RunState.STARTING,
                   RunTransition.to_state == RunState.QUEUED)
        )
        guard = (Run.id == run.id, Run.state == RunState.STARTING, Run.runner_ref.is_(None), _held_by(run.worker_id))

        def back(conn: Connection) -> str | None:
            requeues = int(conn.execute(count).scalar_one())
            if requeues < cap:
                to, why = RunState.QUEUED, reason
                values: dict[str, Any] = {"runner": None, "secret_hash": None, "worker_id": None,
                                          "started_at": None, "progress": None}
            else:
                to, why = RunState.FAILED, give_up
                values = {"finished_at": now}
            moved = conn.execute(update(Run).where(*guard).values(state=to, reason=_reason(why), updated_at=now,
                                                                 **values))
            if _rowcount(moved) != 1:
                return None
            conn.execute(insert(RunTransition).values(run_id=run.id, from_state=RunState.STARTING, to_state=to,
                                                      reason=_reason(why), at=now))
            return to

        moved_to = await self.store.write(back)
        if moved_to is not None:
            forget_run_secrets(run.id)
        return moved_to

    def _step(
        self, conn: Connection, run_id: int, from_state: str, to: str, reason: str | None,
        values: Mapping[str, Any], *, holder: int | _Anyone | None = ANYONE,
    ) -> None:
        now = self.clock()
        fields: dict[str, Any] = {"state": to, "reason": _reason(reason), "updated_at": now, **values}
        if to == RunState.STARTING:
            fields.setdefault("started_at", now)
        if is_final(to):
            fields.setdefault("finished_at", now)
        where = [Run.id == run_id, Run.state == from_state]
        if not isinstance(holder, _Anyone):
            where.append(_held_by(holder))
        result = conn.execute(update(Run).where(*where).values(**fields))
        if _rowcount(result) != 1:
            raise _Lost
        conn.execute(insert(RunTransition).values(run_id=run_id, from_state=from_state, to_state=to,
                                                  reason=_reason(reason), at=now))
