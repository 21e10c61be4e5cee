"""The dispatcher against real databases: leases, retries, dead letters, and two dispatchers at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.dispatcher import Dispatcher, backoff_delay
from bot.routing import Event, Router
from bot.services import Services
from bot.store.db import Store
from bot.store.inbox import Inbox, NewDelivery
from bot.store.models import utcnow
from tests.support import make_settings


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, KICKOFF_MAX_ATTEMPTS=3, KICKOFF_HANDLER_TIMEOUT=0.5)
    store = Store(database_url)
    await store.migrate()
    yield Services(settings=settings, store=store, inbox=Inbox(store))
    await store.close()


def delivery(n: int, event: str = "issues", repo: str | None = "o/r", action: str = "opened") -> NewDelivery:
    body = {"action": action, "n": n}
    return NewDelivery(id=f"d{n}", event=event, action=action, installation_id=1, repository=repo,
                       payload=json.dumps(body), received_at=utcnow() + timedelta(microseconds=n))


async def test_router_composes_feature_routers() -> None:
    calls: list[str] = []
    issues, comments = Router(), Router()

    @issues.on("issues.opened")
    async def issue_opened(event: Event, services: Services) -> None:
        calls.append("opened")

    @issues.on("issues")
    async def any_issue(event: Event, services: Services) -> None:
        calls.append("any")

    @comments.on("issue_comment.created")
    async def comment_created(event: Event, services: Services) -> None:
        calls.append("comment")

    root = Router(issues, comments)
    assert root.keys() == {"issues", "issues.opened", "issue_comment.created"}
    event = Event("x", "issues", "opened", {})
    assert await root.dispatch(event, None) == 2  # type: ignore[arg-type]
    assert calls == ["any", "opened"]
    assert await root.dispatch(Event("y", "issues", "closed", {}), None) == 1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="route key"):
        root.on("a.b.c")


async def test_handler_runs_and_delivery_is_done(services: Services) -> None:
    seen: list[tuple[str, str | None, int]] = []
    router = Router()

    @router.on("issues.opened")
    async def opened(event: Event, _: Services) -> None:
        seen.append((event.delivery_id, event.repository, event.payload["n"]))

    await services.inbox.insert_many([delivery(1), delivery(2, repo="o/other")])
    await Dispatcher(services, router).run_until_idle()
    assert sorted(seen) == [("d1", "o/r", 1), ("d2", "o/other", 2)]
    row = await services.inbox.get("d1")
    assert row is not None
    assert (row.status, row.attempts, row.finished_at is not None) == ("done", 1, True)


async def test_failing_handler_is_retried_then_parked_dead(services: Services) -> None:
    attempts: list[int] = []
    router = Router()

    @router.on("issues")
    async def broken(event: Event, _: Services) -> None:
        attempts.append(event.attempt)
        raise RuntimeError("GitHub said no (token ghs_abcdefghijklmnop1234)")

    await services.inbox.insert_many([delivery(1)])
    dispatcher = Dispatcher(services, router)
    for _ in range(50):
        await dispatcher.run_until_idle()
        row = await services.inbox.get("d1")
        assert row is not None
        if row.status == "dead":
            break
        await asyncio.sleep(0.02)
    assert attempts == [1, 2, 3]
    assert row.status == "dead"
    assert row.last_error is not None
    assert "GitHub said no" in row.last_error
    assert "ghs_abcdefghijklmnop1234" not in row.last_error  # redacted


async def test_handler_timeout_counts_as_a_failure(services: Services) -> None:
    router = Router()

    @router.on("issues")
    async def slow(event: Event, _: Services) -> None:
        await asyncio.sleep(5)

    await services.inbox.insert_many([delivery(1)])
    dispatcher = Dispatcher(services, router)
    # The retry must not fall due while this pass runs, however slow the machine (2 s by default): one attempt only.
    dispatcher.retry_base = 3600.0
    await dispatcher.run_until_idle()
    row = await services.inbox.get("d1")
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "handler timed out")


async def test_expired_lease_is_taken_over_and_the_late_owner_cannot_finish(services: Services) -> None:
    inbox = services.inbox
    await inbox.insert_many([delivery(1)])
    first = await inbox.claim("worker-a", 10, timedelta(seconds=-1))  # already expired: worker-a "died"
    assert [d.id for d in first] == ["d1"]
    second = await inbox.claim("worker-b", 10, timedelta(seconds=60))
    assert [(d.id, d.attempts) for d in second] == [("d1", 2)]
    assert await inbox.claim("worker-c", 10, timedelta(seconds=60)) == []
    assert await inbox.complete("d1", "worker-a") is False
    assert await inbox.complete("d1", "worker-b") is True


async def test_one_repository_is_handled_in_order(services: Services) -> None:
    order: list[int] = []
    router = Router()

    @router.on("issues")
    async def record(event: Event, _: Services) -> None:
        order.append(event.payload["n"])
        await asyncio.sleep(0.01)

    await services.inbox.insert_many([delivery(n) for n in range(1, 8)])
    await Dispatcher(services, router).run_until_idle()
    assert order == list(range(1, 8))
    counts = await services.inbox.count_by_status()
    assert counts == {"done": 7}


async def test_dispatcher_loop_wakes_on_new_delivery(services: Services) -> None:
    done = asyncio.Event()
    router = Router()

    @router.on("issues")
    async def record(event: Event, _: Services) -> None:
        done.set()

    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(services, router).run(stop))
    await services.inbox.insert_many([delivery(1)])
    services.wakeup.set()
    await asyncio.wait_for(done.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_backoff_grows_and_is_capped() -> None:
    assert 0.8 <= backoff_delay(1, 1.0) <= 1.2
    assert 6.4 <= backoff_delay(4, 1.0) <= 9.6
    assert backoff_delay(40, 1.0, cap=60) <= 72


@pytest.mark.postgres
async def test_two_dispatchers_on_postgresql_never_hold_one_delivery(postgres_url: str) -> None:
    holding: dict[str, str] = {}
    handled: list[tuple[str, str]] = []
    overlaps: list[str] = []
    router = Router()
    count = 120

    def make(worker: str) -> Router:
        r = Router()

        @r.on("issues")
        async def hold(event: Event, _: Services) -> None:
            if event.delivery_id in holding:
                overlaps.append(event.delivery_id)
            holding[event.delivery_id] = worker
            await asyncio.sleep(0.005)
            handled.append((event.delivery_id, worker))
            del holding[event.delivery_id]

        return r

    stores = [Store(postgres_url), Store(postgres_url)]
    settings = make_settings(postgres_url, KICKOFF_DISPATCH_CONCURRENCY=8)
    all_services = [Services(settings=settings, store=s, inbox=Inbox(s)) for s in stores]
    await all_services[0].inbox.insert_many([delivery(n, repo=f"o/r{n}") for n in range(count)])
    try:
        await asyncio.gather(
            Dispatcher(all_services[0], make("a"), worker_id="a").run_until_idle(),
            Dispatcher(all_services[1], make("b"), worker_id="b").run_until_idle(),
        )
    finally:
        for s in stores:
            await s.close()
    assert overlaps == []
    assert sorted(d for d, _ in handled) == sorted(f"d{n}" for n in range(count))
    assert {w for _, w in handled} == {"a", "b"}  # both really worked
    del router


async def test_two_dispatchers_never_handle_one_repositorys_deliveries_at_once_and_keep_their_order(
    database_url: str,
) -> None:
    """`issues.opened` and `issues.labeled` for one label, or one pull request's events, on two workers: never
    handled at the same time, and in the order they arrived; other repositories still go in parallel. (On SQLite
    two processes share one file; on PostgreSQL the claim lock orders the claims.)"""
    repos = [f"o/r{n}" for n in range(12)]  # more than one dispatcher's 8 slots: both get some
    busy: dict[str, str] = {}
    overlaps: list[tuple[str, str, str]] = []
    order: dict[str, list[int]] = {repo: [] for repo in repos}
    workers: dict[str, set[str]] = {repo: set() for repo in repos}

    def make(worker: str) -> Router:
        r = Router()

        @r.on("issues")
        async def hold(event: Event, _: Services) -> None:
            repo = event.payload["repo"]
            if repo in busy:
                overlaps.append((repo, busy[repo], worker))
            busy[repo] = worker
            await asyncio.sleep(0.01)  # a handler's awaits: the other dispatcher's claims come in between
            order[repo].append(event.payload["n"])
            workers[repo].add(worker)
            del busy[repo]

        return r

    stores = [Store(database_url), Store(database_url)]
    await stores[0].migrate()
    settings = make_settings(database_url, KICKOFF_DISPATCH_CONCURRENCY=8)
    all_services = [Services(settings=settings, store=s, inbox=Inbox(s)) for s in stores]
    rows = []
    for n in range(96):
        repo = repos[n % len(repos)]
        rows.append(NewDelivery(id=f"d{n}", event="issues", action="labeled", installation_id=1, repository=repo,
                                payload=json.dumps({"n": n, "repo": repo}),
                                received_at=utcnow() + timedelta(microseconds=n)))
    await all_services[0].inbox.insert_many(rows)
    try:
        await asyncio.gather(*(
            Dispatcher(services, make(name), worker_id=name).run_until_idle()
            for services, name in zip(all_services, ("a", "b"), strict=True)
        ))
    finally:
        for s in stores:
            await s.close()
    assert overlaps == []
    assert order == {repo: list(range(i, 96, len(repos))) for i, repo in enumerate(repos)}
    assert set().union(*workers.values()) == {"a", "b"}  # both really worked


async def test_a_full_dispatcher_claims_again_as_soon_as_a_slot_frees(database_url: str) -> None:
    """With every slot taken, the loop waits for a slot, not for the next wake-up or poll (30 s here)."""
    settings = make_settings(database_url, KICKOFF_DISPATCH_CONCURRENCY=1, KICKOFF_POLL_SECONDS=30)
    store = Store(database_url)
    await store.migrate()
    services = Services(settings=settings, store=store, inbox=Inbox(store))
    handled: list[str] = []
    router = Router()

    @router.on("issues")
    async def record(event: Event, _: Services) -> None:
        handled.append(event.delivery_id)

    await services.inbox.insert_many([delivery(n, repo=f"o/r{n}") for n in range(1, 4)])
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(services, router).run(stop))
    try:
        async with asyncio.timeout(10):
            while len(handled) < 3:
                await asyncio.sleep(0.01)
        assert handled == ["d1", "d2", "d3"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await store.close()


async def test_a_groups_handled_deliveries_are_done_together_and_its_failure_retries(services: Services) -> None:
    order: list[int] = []
    router = Router()

    @router.on("issues")
    async def picky(event: Event, _: Services) -> None:
        order.append(event.payload["n"])
        if event.payload["n"] == 2:
            raise RuntimeError("not this one")

    await services.inbox.insert_many([delivery(n) for n in range(1, 4)])
    dispatcher = Dispatcher(services, router)
    claimed = await dispatcher._claim()
    assert [c.id for c in claimed] == ["d1", "d2", "d3"]
    await asyncio.gather(*set(dispatcher._in_flight.values()))
    assert order == [1, 2, 3]
    statuses = {d.id: (d.status, d.lease_owner) for d in await services.inbox.list()}
    assert statuses == {"d1": ("done", None), "d2": ("retrying", None), "d3": ("done", None)}
    assert not dispatcher._in_flight
    assert not dispatcher._busy_repos


async def test_a_slow_group_keeps_every_lease_until_it_records_the_outcome(database_url: str) -> None:
    """Handled but not yet marked done is still leased: another dispatcher cannot take it over meanwhile."""
    settings = make_settings(database_url, KICKOFF_LEASE_SECONDS=1.0, KICKOFF_HANDLER_TIMEOUT=5)
    store = Store(database_url)
    await store.migrate()
    services = Services(settings=settings, store=store, inbox=Inbox(store))
    handled: list[str] = []
    router = Router()

    @router.on("issues")
    async def slow(event: Event, _: Services) -> None:
        handled.append(event.delivery_id)
        await asyncio.sleep(0.6)  # the group takes 1.8 s; each lease lasts 1 s unless renewed

    try:
        await services.inbox.insert_many([delivery(n) for n in range(1, 4)])  # one repository: one group
        dispatcher = Dispatcher(services, router, worker_id="first")
        assert len(await dispatcher._claim()) == 3
        group = asyncio.gather(*set(dispatcher._in_flight.values()))
        stolen = []
        while not group.done():
            stolen += await services.inbox.claim("thief", 10, timedelta(seconds=30))
            await asyncio.sleep(0.05)
        await group
        assert stolen == []
        assert handled == ["d1", "d2", "d3"]
        assert await services.inbox.count_by_status() == {"done": 3}
    finally:
        await store.close()
