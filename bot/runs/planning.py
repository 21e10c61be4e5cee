"""Turn an accepted trigger into rows: one `Trigger` and its queued `Run`s (agents × attempts), exactly once.

The trigger is keyed by its delivery id and its index within the delivery, so a retried or redelivered delivery
finds the rows it planned before instead of planning again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.runs.snapshot import Snapshot, digest
from bot.services import Services
from bot.slash_commands import MAX_ATTEMPTS
from bot.store.models import Run, RunState, RunTransition, Trigger, TriggerSnapshot
from bot.untrusted import clean_untrusted

log = logging.getLogger(__name__)

SOURCES = frozenset({"label", "comment", "review", "review_comment", "check", "fix"})


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """What to plan: who asked for which task on which issue or pull request, and the fan-out."""

    delivery_id: str
    seq: int
    installation_id: int
    repository: str  # owner/name
    issue_number: int
    task: str
    agents: tuple[str, ...]
    attempts: int
    sender: str
    source: str
    instructions: str = ""  # untrusted; cleaned before it is stored
    is_pull_request: bool = False
    base_branch: str | None = None
    reason: str | None = None  # recorded on each run's first transition
    snapshot: Snapshot | None = None  # the issue as it was at the trigger (bot.runs.snapshot), stored with it

    @property
    def kind(self) -> str:
        return "followup" if self.is_pull_request else "new"


@dataclass(frozen=True, slots=True)
class PlannedRun:
    id: int
    agent: str
    attempt: int
    state: str


@dataclass(frozen=True, slots=True)
class PlannedTrigger:
    trigger_id: int
    task: str
    sender: str
    runs: tuple[PlannedRun, ...]
    tracking_comment_id: int | None
    created: bool  # False when the delivery had already been planned


def _insert(services: Services) -> Callable[..., Any]:
    return postgresql.insert if services.store.dialect == "postgresql" else sqlite.insert


def _validate(request: TriggerRequest) -> tuple[str, ...]:
    agents = tuple(dict.fromkeys(request.agents))
    if not agents:
        raise ValueError("a trigger needs at least one agent")
    if not 1 <= request.attempts <= MAX_ATTEMPTS:
        raise ValueError(f"attempts must be 1..{MAX_ATTEMPTS}, not {request.attempts}")
    if request.source not in SOURCES:
        raise ValueError(f"unknown trigger source {request.source!r}")
    return agents


async def plan_trigger(services: Services, request: TriggerRequest) -> PlannedTrigger:
    """Insert the trigger and its runs (state `queued`) in one transaction, or return what an earlier attempt
    of the same delivery planned. Wakes the scheduler when something new was planned."""
    agents = _validate(request)
    now = services.clock()
    stmt = (
        _insert(services)(Trigger)
        .values(
            delivery_id=request.delivery_id,
            seq=request.seq,
            installation_id=request.installation_id,
            repository=request.repository,
            issue_number=request.issue_number,
            is_pull_request=request.is_pull_request,
            source=request.source,
            task=request.task,
            sender=request.sender,
            instructions=clean_untrusted(request.instructions),
            tracking_comment_id=None,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["delivery_id", "seq"])
        .returning(Trigger.id)
    )
    reason = request.reason or f"planned from a {request.source} by {request.sender}"
    async with services.store.sessions.begin() as session:
        trigger_id = (await session.execute(stmt)).scalar_one_or_none()
        if trigger_id is None:
            existing = await _load(session, request.delivery_id, request.seq)
            if existing is None:  # pragma: no cover - the conflicting row cannot vanish inside the transaction
                raise RuntimeError("trigger conflict without a trigger")
            return existing
        runs = [
            Run(
                trigger_id=trigger_id,
                installation_id=request.installation_id,
                repository=request.repository,
                issue_number=request.issue_number,
                task=request.task,
                agent=agent,
                attempt=attempt,
                kind=request.kind,
                state=RunState.QUEUED,
                base_branch=None if request.is_pull_request else request.base_branch,
                pr_number=request.issue_number if request.is_pull_request else None,
                created_at=now,
                updated_at=now,
            )
            for agent in agents
            for attempt in range(1, request.attempts + 1)
        ]
        session.add_all(runs)
        if request.snapshot is not None:
            text = request.snapshot.dump()
            session.add(TriggerSnapshot(trigger_id=trigger_id, body=text, sha256=digest(text), taken_at=now))
        await session.flush()
        session.add_all(
            RunTransition(run_id=run.id, from_state=None, to_state=RunState.QUEUED, reason=reason, at=now)
            for run in runs
        )
    log.info(
        "planned trigger %s: %s on %s#%s, %d runs",
        trigger_id, request.task, request.repository, request.issue_number, len(runs),
    )
    services.runs_changed.set()
    return PlannedTrigger(
        trigger_id,
        request.task,
        request.sender,
        tuple(PlannedRun(run.id, run.agent, run.attempt, run.state) for run in runs),
        None,
        created=True,
    )


async def find_trigger(services: Services, delivery_id: str, seq: int) -> PlannedTrigger | None:
    """What an earlier attempt of this delivery planned for command `seq`, if anything."""
    async with services.store.sessions() as session:
        return await _load(session, delivery_id, seq)


async def set_tracking_comment(services: Services, trigger_id: int, comment_id: int) -> bool:
    """Record the trigger's tracking comment unless one is recorded already; whether this call recorded it."""
    async with services.store.sessions.begin() as session:
        result = await session.execute(
            update(Trigger)
            .where(Trigger.id == trigger_id, Trigger.tracking_comment_id.is_(None))
            .values(tracking_comment_id=comment_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


async def _load(session: AsyncSession, delivery_id: str, seq: int) -> PlannedTrigger | None:
    trigger = (
        await session.scalars(select(Trigger).where(Trigger.delivery_id == delivery_id, Trigger.seq == seq))
    ).one_or_none()
    if trigger is None:
        return None
    runs = (
        await session.scalars(select(Run).where(Run.trigger_id == trigger.id).order_by(Run.id))
    ).all()
    return PlannedTrigger(
        trigger.id,
        trigger.task,
        trigger.sender,
        tuple(PlannedRun(run.id, run.agent, run.attempt, run.state) for run in runs),
        trigger.tracking_comment_id,
        created=False,
    )
