"""The queue's periodic sweep: every queue with an open entry reconciled again, to repair missed webhooks and to
time out checks that never report."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.queue.service import QueueService

log = logging.getLogger(__name__)


class QueueSweeper:
    """The periodic sweep of `kickoff serve` and `kickoff worker`: repairs missed webhooks, times out checks."""

    def __init__(self, service: QueueService, *, interval: float | None = None) -> None:
        self.service = service
        self.interval = interval if interval is not None else service.settings.sweep_seconds

    async def run(self, stop: asyncio.Event) -> None:
        if self.service.services.github is None:
            return  # nothing can reach GitHub: nothing to sweep
        log.info("queue sweep every %.0f s", self.interval)
        while not stop.is_set():
            try:
                await self.service.sweep()
            except Exception:
                log.exception("queue sweep failed; trying again at the next one")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


def build_sweeper(service: QueueService) -> QueueSweeper:
    return QueueSweeper(service)


__all__ = ["QueueSweeper", "build_sweeper"]
