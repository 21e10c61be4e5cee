"""Two workers (two `QueueService`s on two engines) on one PostgreSQL database reconcile one repository's queue one
at a time: events wait for the reconcile under way, the sweep skips a repository being reconciled elsewhere."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.queue.service import QueueService
from bot.root import compose
from bot.store.db import Store
from tests.fake_github import FakeGitHub
from tests.queue.support import APP_ID, BASE, FULL, KEY, OWNER, REPO, Clock, World, sha
from tests.support import make_settings

reconciling: contextvars.ContextVar[str] = contextvars.ContextVar("reconciling", default="")


@dataclass
class WatchedGitHub(FakeGitHub):
    """The fake GitHub, noting which reconcile made each call (the `reconciling` of the calling task)."""

    who: list[str] | None = None

    def _record(self, verb: str, *args: Any) -> None:
        if self.who is None:
            self.who = []
        self.who.append(reconciling.get())
        super()._record(verb, *args)


@dataclass
class Replicas:
    first: World
    second: QueueService
    gh: WatchedGitHub
    second_store: Store


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[Replicas]:
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    gh = WatchedGitHub(now=clock, permissions={"rev": "write"})
    gh.set_file(OWNER, REPO, ".github/kickoff.yml", "queue: {}\n")
    stores = [Store(postgres_url), Store(postgres_url)]  # two engines: two workers' connections
    await stores[0].migrate()
    try:
        first, second = (compose(make_settings(postgres_url, APP_ID=APP_ID), store, github=gh, clock=clock)
                         for store in stores)
        world = World(first, gh, clock)
        gh.branch_shas[(OWNER, REPO, BASE)] = sha("base-0")
        yield Replicas(world, QueueService(second), gh, stores[1])
    finally:
        for store in stores:
            await store.close()


def runs_of(calls: list[str]) -> list[str]:
    """The reconciles in the order their calls came, one entry per unbroken stretch of calls."""
    stretches: list[str] = []
    for who in calls:
        if not stretches or stretches[-1] != who:
            stretches.append(who)
    return stretches


async def test_concurrent_reconciles_of_one_repository_never_overlap(replicas: Replicas) -> None:
    w = replicas.first
    for number in (1, 2, 3):
        await w.add_pr(number, ci="success" if number != 2 else "pending")
    services = [w.service, replicas.second]

    async def reconcile(i: int) -> None:
        reconciling.set(f"r{i}")
        await services[i % 2].reconcile(KEY)

    await asyncio.gather(*(reconcile(i) for i in range(6)))
    stretches = runs_of([who for who in replicas.gh.who or [] if who])
    # Every reconcile made its calls in one stretch: none ran while another was under way.
    assert sorted(stretches) == [f"r{i}" for i in range(6)], stretches
    assert set(w.checks()) == {1, 2, 3}


async def test_the_sweep_skips_a_repository_being_reconciled_elsewhere(replicas: Replicas) -> None:
    w = replicas.first
    await w.add_pr(1)
    async with w.services.store.exclusive(f"queue:{FULL}"):  # the other worker is reconciling it
        before = len(w.gh.calls)
        assert await replicas.second.sweep() == 0
        assert w.gh.calls[before:] == []
    assert await replicas.second.sweep() == 1
    assert w.gh.calls
