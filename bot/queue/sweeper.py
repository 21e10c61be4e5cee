"""The queue's periodic sweep: every queue with an open entry reconciled again, to repair missed webhooks and to
time out checks that never report."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.services import Services

log = logging.getLogger(__name__)


class QueueSweeper:
    """The periodic sweep of `kickoff serve` and `kickoff worker`: repairs missed webhooks, times out checks."""

    def __init__(self, services: Services, *, interval: float | None = None) -> None:
        self.services = services
        self.service = services.queue
        self.interval = interval if interval is not None else self.service.settings.sweep_seconds

    async def run(self, stop: asyncio.Event) -> None:
        if self.services.github is None:
            return  # nothing can reach GitHub: nothing to sweep
        log.info("queue sweep every %.0f s", self.interval)
        while not stop.is_set():
            try:
                await self.service.sweep()
            except Exception:
                log.exception("queue sweep failed; trying again at the next one")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


def build_sweeper(services: Services) -> QueueSweeper:
    return QueueSweeper(services)


__all__ = ["QueueSweeper", "build_sweeper"]
