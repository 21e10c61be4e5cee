"""Content-creating requests are paced per installation: at most 80 a minute and 500 an hour."""

from __future__ import annotations

import asyncio

import pytest
import respx

from bot.github import GitHubGateway
from bot.github.pacing import WritePacer
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, mount_mint


async def test_the_81st_acquisition_in_a_minute_waits() -> None:
    clock = FakeTime()
    pacer = WritePacer(clock=clock.monotonic, sleep=clock.sleep)

    waits = [await pacer.acquire(1) for _ in range(80)]
    assert waits == [0.0] * 80
    assert clock.sleeps == []

    assert await pacer.acquire(1) == pytest.approx(60.0)
    assert clock.sleeps == [pytest.approx(60.0)]


async def test_spread_out_writes_are_not_delayed() -> None:
    clock = FakeTime()
    pacer = WritePacer(clock=clock.monotonic, sleep=clock.sleep)

    for _ in range(200):
        await pacer.acquire(1)
        clock.advance(0.75)  # exactly 80 a minute

    assert clock.sleeps == []


async def test_the_window_slides() -> None:
    clock = FakeTime()
    pacer = WritePacer(clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(40):
        await pacer.acquire(1)
    clock.advance(30)
    for _ in range(40):
        await pacer.acquire(1)
    clock.advance(10)

    # 80 in the last 40 s: the next fits once the first 40 are a minute old, 20 s from now.
    assert pacer.delay(1) == pytest.approx(20.0)


async def test_the_hourly_limit() -> None:
    clock = FakeTime()
    pacer = WritePacer(clock=clock.monotonic, sleep=clock.sleep)

    for _ in range(500):
        await pacer.acquire(1)
    assert sum(clock.sleeps) == pytest.approx(6 * 60.0)  # 500 = 6 full minutes of 80, then 20 more

    await pacer.acquire(1)
    assert clock.mono - 1000.0 == pytest.approx(3600.0)


async def test_installations_are_paced_separately() -> None:
    clock = FakeTime()
    pacer = WritePacer(clock=clock.monotonic, sleep=clock.sleep)

    for key in (1, 2):
        for _ in range(80):
            await pacer.acquire(key)

    assert clock.sleeps == []


async def test_concurrent_waiters_are_served_in_turn() -> None:
    clock = FakeTime()
    pacer = WritePacer([(2, 10.0)], clock=clock.monotonic, sleep=clock.sleep)

    waits = await asyncio.gather(*(pacer.acquire(1) for _ in range(5)))

    assert waits == [0.0, 0.0, 10.0, 0.0, 10.0]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="limits"):
        WritePacer([(0, 60.0)])


async def test_the_gateway_delays_the_81st_write_in_a_minute(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mount_mint(mock_github, clock)
    posted_at: list[float] = []

    def created(request: object) -> respx.MockResponse:
        posted_at.append(clock.monotonic())
        return respx.MockResponse(201, json={"id": len(posted_at)})

    mock_github.post(f"{BASE_URL}/repos/octo/hello/issues/1/comments").mock(side_effect=created)
    reads = mock_github.get(f"{BASE_URL}/repos/octo/hello/collaborators/ann/permission").respond(
        json={"permission": "write", "role_name": "write"}
    )

    for n in range(80):
        assert await gateway.comment(INSTALLATION_ID, "octo", "hello", 1, f"c{n}") == n + 1
    for _ in range(5):  # reads are not paced
        await gateway.get_collaborator_permission(INSTALLATION_ID, "octo", "hello", "ann")
    assert clock.sleeps == []

    await gateway.comment(INSTALLATION_ID, "octo", "hello", 1, "the 81st")

    assert clock.sleeps == [pytest.approx(60.0)]
    assert posted_at[80] - posted_at[0] >= 60.0
    assert reads.call_count == 5
