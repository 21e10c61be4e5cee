"""Workers: the processes that hold claims, their heartbeats, and who decides that one is dead.

Every `kickoff serve` (with its worker) and `kickoff worker` registers a row at its start and heartbeats it
(bot.worker's `Membership`). Claims name their worker: a delivery's lease (`deliveries.worker_id`), a run from
`starting` on (`runs.worker_id`), a pull request being opened (`pull_requests.worker_id`, and the run's own
`worker_id` while its delivery is `delivering`).

A worker is dead when it stopped cleanly (`stopped_at`), when its heartbeat is older than the timeout, or, seen from
its own host and pid namespace, when its pid is gone or now belongs to a process that started at another time (a
restarted container's pid 1, a reused pid). The last is checked here, in Python, by every live worker's reaping pass;
the first two are also plain SQL (`alive`), so a claim can test its owner in the statement that takes it over.

Reaping a dead worker marks it stopped (one guarded UPDATE: one reaper wins) and ends its delivery leases at once;
its runs and its pull requests are taken over by the scheduler and the pull-request opener, which test `alive`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, CursorResult, Table, exists, insert, select, update
from sqlalchemy.orm import InstrumentedAttribute

from bot.store.db import Store
from bot.store.models import Delivery, DeliveryStatus, Worker, utcnow

log = logging.getLogger(__name__)

_WORKERS = cast(Table, Worker.__table__)


def process_start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`, field 22); None when there is no
    such (live) process or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: the fields after the last ")" are 3, 4, ...
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def pid_namespace() -> str | None:
    """This process's pid namespace (`pid:[4026531836]`): pids compare only within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells one process from every other: its host, its pid namespace, its pid and when it started."""

    host: str
    pid: int
    pid_namespace: str | None
    process_started: int | None

    @classmethod
    def here(cls) -> Identity:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, pid_namespace(), process_start_time(pid))

    def sees_pids_of(self, worker: Worker) -> bool:
        """Whether `worker`'s pid means the same process here: same host and same (known) pid namespace."""
        return (
            worker.host == self.host and self.pid_namespace is not None and worker.pid_namespace == self.pid_namespace
        )


def process_gone(worker: Worker) -> bool:
    """Seen from the worker's own host and pid namespace: its pid is gone, or is another process now."""
    started = process_start_time(worker.pid)
    if started is None:
        return True
    return worker.process_started is not None and started != worker.process_started


def alive(worker_id: InstrumentedAttribute[int | None], cutoff: datetime) -> ColumnElement[bool]:
    """SQL: the worker `worker_id` is registered, not stopped, and heartbeat since `cutoff`."""
    return exists(
        select(_WORKERS.c.id).where(
            _WORKERS.c.id == worker_id, _WORKERS.c.stopped_at.is_(None), _WORKERS.c.heartbeat_at >= cutoff
        )
    )


def _rowcount(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class WorkerStore:
    """The `workers` rows. `timeout`: a heartbeat older than this means the worker is dead."""

    def __init__(self, store: Store, *, timeout: timedelta, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.timeout = timeout
        self.clock = clock

    def cutoff(self) -> datetime:
        """Workers that heartbeat before this are dead."""
        return self.clock() - self.timeout

    async def register(self, identity: Identity) -> int:
        now = self.clock()
        stmt = insert(_WORKERS).values(
            host=identity.host[:255], pid=identity.pid, pid_namespace=identity.pid_namespace,
            process_started=identity.process_started, started_at=now, heartbeat_at=now,
        ).returning(_WORKERS.c.id)
        return int(await self.store.write(lambda conn: conn.execute(stmt).scalar_one()))

    async def heartbeat(self, worker_id: int) -> bool:
        """Say the worker lives; False when it was declared dead meanwhile (its claims are someone else's now)."""
        stmt = (
            update(_WORKERS)
            .where(_WORKERS.c.id == worker_id, _WORKERS.c.stopped_at.is_(None))
            .values(heartbeat_at=self.clock())
        )
        return await self.store.write(lambda conn: _rowcount(conn.execute(stmt)) == 1)

    async def stop(self, worker_id: int) -> None:
        """A clean stop: the worker is dead from now on, and what it still held is released at once."""
        await self.store.write(partial(self._bury, worker_id=worker_id, heartbeat_at=None))

    async def get(self, worker_id: int) -> Worker | None:
        async with self.store.sessions() as session:
            return await session.get(Worker, worker_id)

    async def live(self) -> list[Worker]:
        """The workers not yet found dead, by id."""
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= self.cutoff())
                .order_by(Worker.id)
            )
            return list(rows)

    async def reap(self, me: Identity, *, exclude: int | None = None) -> list[int]:
        """Find the dead workers that are not marked so yet, mark them stopped and end their delivery leases; the
        ids of those this call buried (another reaper may have been first for some)."""
        cutoff = self.cutoff()
        async with self.store.sessions() as session:
            candidates = list(await session.scalars(select(Worker).where(Worker.stopped_at.is_(None))))
        buried: list[int] = []
        for worker in candidates:
            if worker.id == exclude:
                continue
            if worker.heartbeat_at < cutoff:
                # Guarded by the heartbeat just read: a worker that heartbeat meanwhile lives on.
                stale_since = worker.heartbeat_at
                why = "its heartbeat stopped"
            elif me.sees_pids_of(worker) and process_gone(worker):
                stale_since = None
                why = f"its process {worker.pid} is gone"
            else:
                continue
            if await self.store.write(partial(self._bury, worker_id=worker.id, heartbeat_at=stale_since)):
                log.warning("worker %s (%s, pid %s) is dead: %s; its claims are taken over",
                            worker.id, worker.host, worker.pid, why)
                buried.append(worker.id)
        return buried

    def _bury(self, conn: Connection, worker_id: int, heartbeat_at: datetime | None) -> bool:
        now = self.clock()
        mark = update(_WORKERS).where(_WORKERS.c.id == worker_id, _WORKERS.c.stopped_at.is_(None))
        if heartbeat_at is not None:
            mark = mark.where(_WORKERS.c.heartbeat_at == heartbeat_at)
        if _rowcount(conn.execute(mark.values(stopped_at=now))) != 1:
            return False
        deliveries = cast(Table, Delivery.__table__)
        # Its leases end now: claimable at once, as if they had run out. (Leases still running have `due_at` in the
        # future, a short range of the due index.)
        conn.execute(
            update(deliveries)
            .where(deliveries.c.due_at > now, deliveries.c.worker_id == worker_id,
                   deliveries.c.status == DeliveryStatus.PROCESSING)
            .values(due_at=now, lease_expires_at=now)
        )
        return True
