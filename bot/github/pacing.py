"""Pacing of content-creating requests, so Kickoff stays under GitHub's secondary rate limits."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

# GitHub's documented secondary limits for content creation: about 80 a minute and 500 an hour.
WRITE_LIMITS: tuple[tuple[int, float], ...] = ((80, 60.0), (500, 3600.0))

Sleep = Callable[[float], Awaitable[None]]


class WritePacer:
    """Sliding windows per key: at most `count` acquisitions in any `period` seconds, for every (count, period).

    A sliding window (rather than a token bucket that starts full) never lets a burst plus refill exceed the
    limit within one window. Waiters for one key queue in order; other keys are not held up.
    """

    def __init__(
        self,
        limits: Sequence[tuple[int, float]] = WRITE_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not limits or any(count < 1 or period <= 0 for count, period in limits):
            raise ValueError("limits must be (count >= 1, period > 0) pairs")
        self._limits = tuple(limits)
        self._depth = max(count for count, _ in self._limits)
        self._clock = clock
        self._sleep = sleep
        self._history: dict[int, deque[float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def delay(self, key: int) -> float:
        """Seconds the next acquisition for `key` would wait now."""
        history = self._history.get(key)
        if not history:
            return 0.0
        now = self._clock()
        wait = 0.0
        for count, period in self._limits:
            if len(history) >= count:
                wait = max(wait, history[-count] + period - now)
        return wait

    async def acquire(self, key: int) -> float:
        """Wait until one more request for `key` fits every window, record it, and return the seconds waited."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            wait = self.delay(key)
            if wait > 0:
                await self._sleep(wait)
            self._history.setdefault(key, deque(maxlen=self._depth)).append(self._clock())
            return max(wait, 0.0)
