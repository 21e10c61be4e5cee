"""The review queue's rows: `pull_requests` (state, queue commands) and what the queue remembers between reconciles.

`pull_requests.queue_check` holds one JSON object per pull request (the `Memory` below):

    {"check": {"head_sha", "status", "conclusion", "title", "summary"} | null,   # the last check written
     "state": "queued" | …, "reason": "CLOSED" | … | null, "position": 2 | null,   # what it said
     "seen_head": sha, "seen_review": "approved" | …,                              # classify the next push
     "updated_from": sha, "update_base": sha,                                      # the last update Kickoff made
     "pending_head": sha, "pending_since": iso-time}                               # CI deadline

so a reconcile writes only what changed, never updates the same (head, base) twice, and survives a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from bot.queue.model import DesiredCheck
from bot.queue.texts import Reason
from bot.store.db import Store
from bot.store.models import PullRequest, utcnow

OPEN = "open"
CLOSED = "closed"
MERGED = "merged"


@dataclass(frozen=True, slots=True)
class QueueKey:
    """One queue: a repository (`owner/name`) and a base branch, and the installation that can act on it."""

    installation_id: int
    repository: str
    base: str

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repo(self) -> str:
        return self.repository.split("/", 1)[1]


@dataclass(frozen=True, slots=True)
class Memory:
    """What the queue remembers about one pull request (see the module docstring)."""

    check: DesiredCheck | None = None
    state: str | None = None
    reason: str | None = None
    position: int | None = None
    seen_head: str | None = None
    seen_review: str | None = None
    updated_from: str | None = None
    update_base: str | None = None
    pending_head: str | None = None
    pending_since: datetime | None = None
    had_checks: bool = False  # CI reported on one of its heads: a head without any check is not green yet

    @classmethod
    def load(cls, text: str | None) -> Memory:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        check = data.get("check")
        since = data.get("pending_since")
        return cls(
            check=DesiredCheck(**check) if isinstance(check, dict) else None,
            state=_text(data.get("state")),
            reason=_text(data.get("reason")),
            position=data.get("position") if isinstance(data.get("position"), int) else None,
            seen_head=_text(data.get("seen_head")),
            seen_review=_text(data.get("seen_review")),
            updated_from=_text(data.get("updated_from")),
            update_base=_text(data.get("update_base")),
            pending_head=_text(data.get("pending_head")),
            pending_since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            had_checks=data.get("had_checks") is True,
        )

    def dump(self) -> str:
        data: dict[str, Any] = {
            "check": asdict(self.check) if self.check is not None else None,
            "state": self.state,
            "reason": self.reason,
            "position": self.position,
            "seen_head": self.seen_head,
            "seen_review": self.seen_review,
            "updated_from": self.updated_from,
            "update_base": self.update_base,
            "pending_head": self.pending_head,
            "pending_since": self.pending_since.isoformat() if self.pending_since is not None else None,
            "had_checks": self.had_checks,
        }
        return json.dumps(data, sort_keys=True)

    def evolve(self, **changes: Any) -> Memory:
        return replace(self, **changes)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def memory_of(row: PullRequest) -> Memory:
    return Memory.load(row.queue_check)


def is_kickoff(row: PullRequest) -> bool:
    """Opened by Kickoff for a run (human pull requests are queued only with the `kickoff:queue` label)."""
    return row.run_id is not None or row.trigger_id is not None or row.agent is not None


class QueueStore:
    """Reads and writes of the queue's state on `pull_requests`; each call is its own short transaction."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    async def queues(self) -> list[QueueKey]:
        """Every queue with an open entry (for the periodic sweep)."""
        async with self.store.sessions() as session:
            rows = await session.execute(
                select(PullRequest.installation_id, PullRequest.repository, PullRequest.base_ref)
                .where(PullRequest.state == OPEN)
                .distinct()
            )
            return sorted({QueueKey(int(i), r, b) for i, r, b in rows.all()}, key=lambda k: (k.repository, k.base))

    async def queue_rows(self, repository: str, base: str) -> list[PullRequest]:
        """The rows of one queue: open ones, and closed ones whose final `Dequeued: CLOSED` check is not written."""
        async with self.store.sessions() as session:
            found = await session.scalars(
                select(PullRequest)
                .where(
                    PullRequest.repository == repository,
                    PullRequest.base_ref == base,
                    or_(
                        PullRequest.state == OPEN,
                        and_(
                            PullRequest.state == CLOSED,
                            or_(PullRequest.dequeued.is_(None), PullRequest.dequeued != Reason.CLOSED.value),
                        ),
                    ),
                )
                .order_by(PullRequest.number)
            )
            return list(found.all())

    async def get(self, repository: str, number: int) -> PullRequest | None:
        async with self.store.sessions() as session:
            return await session.scalar(
                select(PullRequest).where(PullRequest.repository == repository, PullRequest.number == number)
            )

    async def siblings(self, row: PullRequest) -> list[PullRequest]:
        """The other open pull requests of `row`'s fan-out (the runs of its trigger) in its queue, by number."""
        async with self.store.sessions() as session:
            found = await session.scalars(
                select(PullRequest)
                .where(
                    PullRequest.trigger_id == row.trigger_id,
                    PullRequest.run_id.is_not(None),
                    PullRequest.state == OPEN,
                    PullRequest.repository == row.repository,
                    PullRequest.base_ref == row.base_ref,
                    PullRequest.id != row.id,
                )
                .order_by(PullRequest.number)
            )
            return list(found.all())

    async def by_head(self, repository: str, sha: str) -> list[PullRequest]:
        async with self.store.sessions() as session:
            found = await session.scalars(
                select(PullRequest).where(
                    PullRequest.repository == repository, PullRequest.head_sha == sha, PullRequest.state == OPEN
                )
            )
            return list(found.all())

    async def bases(self, repository: str) -> list[str]:
        """The base branches with open entries in a repository."""
        async with self.store.sessions() as session:
            found = await session.scalars(
                select(PullRequest.base_ref)
                .where(PullRequest.repository == repository, PullRequest.state == OPEN)
                .distinct()
            )
            return sorted(found.all())

    async def add_human(
        self,
        *,
        installation_id: int,
        repository: str,
        number: int,
        title: str,
        author: str,
        head_ref: str,
        head_sha: str,
        base_ref: str,
        draft: bool,
    ) -> PullRequest:
        """The row of a human pull request labelled `kickoff:queue` (kept if it exists)."""
        existing = await self.get(repository, number)
        if existing is not None:
            return existing
        now = self.clock()
        row = PullRequest(
            installation_id=installation_id,
            repository=repository,
            number=number,
            title=title,
            author=author,
            head_ref=head_ref,
            head_sha=head_sha,
            base_ref=base_ref,
            state=OPEN,
            draft=draft,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.store.sessions.begin() as session:
                session.add(row)
        except Exception:
            # Another delivery inserted it meanwhile (the unique repository+number constraint).
            found = await self.get(repository, number)
            if found is None:
                raise
            return found
        return row

    async def update(self, row_id: int, **values: Any) -> None:
        """Set columns of one row (facts from GitHub, queue commands, queue state)."""
        values.setdefault("updated_at", self.clock())
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(PullRequest)
                .where(PullRequest.id == row_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def update_many(self, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """Several rows' changes in one transaction."""
        if not changes:
            return
        now = self.clock()
        async with self.store.sessions.begin() as session:
            for row_id, values in changes.items():
                await session.execute(
                    update(PullRequest)
                    .where(PullRequest.id == row_id)
                    .values(**{"updated_at": now, **values})
                    .execution_options(synchronize_session=False)
                )

    async def save_memory(self, row_id: int, memory: Memory, **values: Any) -> None:
        await self.update(row_id, queue_check=memory.dump(), **values)


def as_reason(value: str | None) -> Reason | None:
    """A stored dequeue reason, or None for an unknown value."""
    try:
        return Reason(value) if value else None
    except ValueError:
        return None
