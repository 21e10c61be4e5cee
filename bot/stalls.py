"""An event-loop stall watch: what the loop was doing when it stopped answering for longer than a threshold.

Every webhook ack, report and dashboard request of a process waits on its one event loop, so anything that holds
the loop (a synchronous call, a long pure-Python stretch, a blocking system call) shows as ack latency. With
`KICKOFF_STALL_LOG_MS` set (e.g. 50), `kickoff serve` and `kickoff worker` run a `StallWatch`: the loop touches a
heartbeat every few milliseconds, and a thread of its own, seeing the heartbeat late by more than the threshold,
logs the loop thread's stack at that moment (at most once per stall, with how long it lasted once it ends). A
stall whose stack sits in the selector (`select`/`epoll`) was the process not getting a CPU, not Kickoff's code.
Off by default; the cost when on is one timer callback every `beat` seconds and a thread waking as often.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

BEAT_SECONDS: Final = 0.005
STACK_LIMIT: Final = 14


class StallWatch:
    """Log the loop thread's stack whenever `loop` is late by more than `threshold` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float, *, beat: float = BEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.threshold = threshold
        self.beat = beat
        self.clock = clock
        self.stalls = 0
        self.longest = 0.0
        self._last = clock()
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start watching; call from the loop's own thread."""
        self._loop_thread = threading.get_ident()
        self._last = self.clock()
        self._tick()
        self._thread = threading.Thread(target=self._watch, name="kickoff-stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _tick(self) -> None:
        self._last = self.clock()
        self._handle = self.loop.call_later(self.beat, self._tick)

    def _watch(self) -> None:
        in_stall: float | None = None  # when the stall being reported began
        while not self._stop.wait(min(self.beat, self.threshold / 4)):
            late = self.clock() - self._last
            if late > self.threshold:
                if in_stall is None:
                    in_stall = self._last
                    self.stalls += 1
                    log.warning("event loop stalled for %.0f ms so far; the loop thread is at:\n%s",
                                late * 1000, self._stack())
            elif in_stall is not None:
                lasted = max(self._last - in_stall, 0.0)
                self.longest = max(self.longest, lasted)
                log.warning("event loop stall ended after about %.0f ms", lasted * 1000)
                in_stall = None

    def _stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread or -1)
        if frame is None:
            return "  (the loop thread is gone)"
        innermost = traceback.extract_stack(frame)[-STACK_LIMIT:]  # the frames nearest to what is running
        return "".join(traceback.format_list(innermost)).rstrip()


def watch_loop(threshold_ms: float | None) -> StallWatch | None:
    """A started `StallWatch` on the running loop, or None when `threshold_ms` is unset or not positive."""
    if not threshold_ms or threshold_ms <= 0:
        return None
    watch = StallWatch(asyncio.get_running_loop(), threshold_ms / 1000.0)
    watch.start()
    log.info("watching the event loop for stalls over %.0f ms", threshold_ms)
    return watch


__all__ = ["StallWatch", "watch_loop"]
