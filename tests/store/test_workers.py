"""Workers' liveness and the take-over of a dead worker's delivery leases, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot.store.db import Store
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import utcnow
from bot.store.workers import Identity, WorkerStore, pid_namespace, process_start_time

LONG_LEASE = timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


def dead_process() -> Identity:
    """The identity of a real process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = process_start_time(child.pid)
    assert started is not None
    child.kill()
    child.wait()
    return Identity(Identity.here().host, child.pid, pid_namespace(), started)


async def test_a_live_worker_is_alive_and_one_silent_past_the_timeout_is_buried(store: Store) -> None:
    clock = Clock()
    workers = WorkerStore(store, timeout=timedelta(seconds=10), clock=clock)
    me = Identity.here()
    elsewhere = Identity("another-host.invalid", me.pid, me.pid_namespace, me.process_started)
    mine, theirs = await workers.register(me), await workers.register(elsewhere)
    assert await workers.reap(me, exclude=mine) == []

    clock.now += timedelta(seconds=9)
    assert await workers.heartbeat(mine)
    assert await workers.reap(me, exclude=mine) == []  # 9 s of silence: within the timeout
    clock.now += timedelta(seconds=2)
    assert [w.id for w in await workers.live()] == [mine]
    assert await workers.reap(me, exclude=mine) == [theirs]
    assert await workers.reap(me, exclude=mine) == []  # buried once
    assert not await workers.heartbeat(theirs)  # it learns, if it lived after all, that its claims are gone


async def test_a_worker_whose_process_is_gone_is_dead_at_once(store: Store) -> None:
    workers = WorkerStore(store, timeout=timedelta(hours=1))
    me = Identity.here()
    mine, gone = await workers.register(me), await workers.register(dead_process())
    assert await workers.reap(me, exclude=mine) == [gone]


async def test_a_restarted_process_with_the_same_pid_releases_its_old_self(store: Store) -> None:
    """A container restarted: the same pid (its pid 1) in the same namespace, but another process start time."""
    workers = WorkerStore(store, timeout=timedelta(hours=1))
    me = Identity.here()
    assert me.process_started is not None
    old_self = await workers.register(Identity(me.host, me.pid, me.pid_namespace, me.process_started - 1))
    mine = await workers.register(me)
    assert await workers.reap(me, exclude=mine) == [old_self]


async def test_pids_of_another_host_or_namespace_are_never_judged_here(store: Store) -> None:
    workers = WorkerStore(store, timeout=timedelta(hours=1))
    gone = dead_process()
    me = Identity.here()
    mine = await workers.register(me)
    await workers.register(Identity("another-host.invalid", gone.pid, gone.pid_namespace, gone.process_started))
    await workers.register(Identity(gone.host, gone.pid, "pid:[1]", gone.process_started))
    assert await workers.reap(me, exclude=mine) == []


async def test_a_dead_workers_delivery_leases_end_at_once(store: Store) -> None:
    workers = WorkerStore(store, timeout=timedelta(hours=1))
    inbox = Inbox(store)
    await inbox.insert_many([
        NewDelivery(id=f"d{i}", event="issues", action="opened", installation_id=1, repository=f"o/r{i}",
                    payload=json.dumps({}), received_at=utcnow())
        for i in range(3)
    ])
    me = Identity.here()
    mine, gone = await workers.register(me), await workers.register(dead_process())
    held = await inbox.claim("dead-dispatcher", 2, LONG_LEASE, worker_id=gone)
    kept = await inbox.claim("my-dispatcher", 1, LONG_LEASE, worker_id=mine)
    assert len(held) == 2
    assert len(kept) == 1
    assert await inbox.claim("thief", 10, LONG_LEASE) == []  # an hour's leases: nothing is due

    assert await workers.reap(me, exclude=mine) == [gone]
    taken = await inbox.claim("my-dispatcher", 10, LONG_LEASE, worker_id=mine)
    assert sorted(d.id for d in taken) == sorted(d.id for d in held)  # the dead one's, and only those
    assert all(d.attempts == 2 for d in taken)
    assert not await inbox.complete_many([d.id for d in held], "dead-dispatcher")  # its lease is no longer its own


async def test_a_clean_stop_releases_the_workers_leases(store: Store) -> None:
    workers = WorkerStore(store, timeout=timedelta(hours=1))
    inbox = Inbox(store)
    await inbox.insert_many([NewDelivery(id="d", event="issues", action="opened", installation_id=1,
                                         repository="o/r", payload="{}", received_at=utcnow())])
    stopping = await workers.register(Identity.here())
    assert len(await inbox.claim("a", 1, LONG_LEASE, worker_id=stopping)) == 1
    await workers.stop(stopping)
    assert [d.id for d in await inbox.claim("b", 1, LONG_LEASE)] == ["d"]
    assert await workers.live() == []
