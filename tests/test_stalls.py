"""The event-loop stall watch (bot.stalls): a loop held by synchronous code is reported with the code's stack."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.stalls import StallWatch, watch_loop


def hold_the_loop_in_a_synchronous_call(seconds: float) -> None:
    time.sleep(seconds)  # as a blocking call inside a coroutine would


async def test_a_held_loop_is_logged_with_the_code_that_held_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.stalls")
    watch = StallWatch(asyncio.get_running_loop(), 0.1)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        hold_the_loop_in_a_synchronous_call(0.5)
        await asyncio.sleep(0.2)
    finally:
        watch.stop()
    # (A loaded machine may add stalls of its own, which show the loop in the selector; this one shows the code.)
    messages = [r.getMessage() for r in caplog.records]
    held = [m for m in messages if "hold_the_loop_in_a_synchronous_call" in m]
    assert len(held) == 1
    assert held[0].startswith("event loop stalled for")
    assert "time.sleep(seconds)" in held[0]
    assert any(m.startswith("event loop stall ended after about") for m in messages)
    assert watch.stalls >= 1
    assert watch.longest >= 0.4


async def test_off_unless_a_threshold_is_set() -> None:
    assert watch_loop(None) is None
    assert watch_loop(0) is None
    watch = watch_loop(40)
    assert watch is not None
    watch.stop()
