"""`Store.exclusive`: one holder at a time across workers (engines) of one database, and a killed holder's lock
freed with its connection."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from bot.store.db import Busy, Store

HOLDER = """
import asyncio, sys
from bot.store.db import Store

async def main() -> None:
    store = Store(sys.argv[1])
    async with store.exclusive(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two workers' stores: two engines on one PostgreSQL database (on SQLite, one process, so one store)."""
    first = Store(database_url)
    second = first if first.is_sqlite else Store(database_url)
    try:
        yield first, second
    finally:
        await first.close()
        if second is not first:
            await second.close()


async def test_holders_of_one_name_never_overlap(two: tuple[Store, Store]) -> None:
    held: list[str] = []
    log: list[tuple[str, str]] = []

    async def hold(store: Store, who: str) -> None:
        async with store.exclusive("queue:octo/repo"):
            held.append(who)
            log.append(("in", who))
            assert held == [who], f"{held} hold the lock at once"
            for _ in range(5):
                await asyncio.sleep(0)  # let every other holder try
            await asyncio.sleep(0.01)
            held.remove(who)
            log.append(("out", who))

    await asyncio.gather(*(hold(two[i % 2], f"w{i}") for i in range(8)))
    assert len(log) == 16
    assert all(log[i][0] == "in" and log[i + 1] == ("out", log[i][1]) for i in range(0, 16, 2))


async def test_a_held_name_is_busy_for_the_others_and_free_after(two: tuple[Store, Store]) -> None:
    first, second = two
    async with first.exclusive("queue:octo/repo"):
        with pytest.raises(Busy):
            async with second.exclusive("queue:octo/repo", wait=False):
                pass
        async with second.exclusive("queue:octo/other", wait=False):
            pass  # another name is not held
    async with second.exclusive("queue:octo/repo", wait=False):
        pass


async def test_a_killed_holders_lock_is_released(postgres_url: str) -> None:
    """A worker killed (-9) while holding the lock: the server drops its connection, and the lock with it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url, "queue:octo/repo"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    store = Store(postgres_url)
    try:
        assert holder.stdout is not None
        line = await asyncio.to_thread(holder.stdout.readline)
        assert line.strip() == "held"
        with pytest.raises(Busy):
            async with store.exclusive("queue:octo/repo", wait=False):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        assert await asyncio.to_thread(holder.wait) == -signal.SIGKILL
        async with asyncio.timeout(60):  # a safety net against a hang, not a measure of speed
            async with store.exclusive("queue:octo/repo"):
                pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        await store.close()
