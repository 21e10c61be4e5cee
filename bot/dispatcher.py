"""The dispatcher: leases inbox rows, routes them to handlers, retries with backoff, parks the hopeless as dead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import traceback
from datetime import timedelta
from typing import Generic, TypeVar

from bot.logs import delivery_id_var, redact
from bot.routing import Event, Router
from bot.services import Services
from bot.store.inbox import ClaimedDelivery
from bot.store.models import utcnow

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Services)  # what the router's handlers are given: `Services` or more (`Features`)

MAX_ERROR_CHARS = 4000
INGRESS_FIRST_SECONDS = 0.05  # the longest the dispatcher waits at a time for this process's webhooks to be answered
INGRESS_YIELD = 4.0  # while webhooks are being answered, handling takes at most about 1/(1 + this) of the loop
COMPLETE_EVERY_SECONDS = 1.0  # a slow group records what it has handled at least this often


def backoff_delay(attempt: int, base: float, *, cap: float = 3600.0, jitter: float = 0.2) -> float:
    """Exponential backoff after the `attempt`-th failure, with a little jitter so retries spread out."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(delay * (1 + random.uniform(-jitter, jitter)))  # noqa: S311 - jitter, not security


class Dispatcher(Generic[S]):
    """Hands each claimed delivery to `router`, with `services` (which the dispatcher itself reads as `Services`)."""

    def __init__(self, services: S, router: Router[S], *, worker_id: str | None = None) -> None:
        self.services = services
        self.router = router
        settings = services.settings.dispatch
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"  # noqa: S311
        self.concurrency = settings.concurrency
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.timeout = settings.handler_timeout_seconds
        self.max_attempts = settings.max_attempts
        self.retry_base = settings.retry_base_seconds
        self.poll = settings.poll_seconds
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._busy_repos: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and handle deliveries until `stop` is set, then let the ones in flight finish."""
        log.info("dispatcher %s started", self.worker_id)
        try:
            while not stop.is_set():
                if len(self._in_flight) >= self.concurrency:
                    # Full: claim again as soon as a slot frees, not at the next wake-up or poll.
                    await asyncio.wait(set(self._in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
                    continue
                # Webhooks being answered here go first (for a short while at most): acknowledging is what GitHub
                # waits for, and what waits meanwhile is claimed in one larger batch.
                await self.services.ingress.wait_idle(INGRESS_FIRST_SECONDS)
                try:
                    claimed = await self._claim()
                except Exception:
                    log.exception("claiming deliveries failed; retrying")
                    claimed = []
                if claimed:
                    continue
                wake = self.services.wakeup
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll):
                        waiters = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
                        try:
                            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for w in waiters:
                                w.cancel()
                wake.clear()
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            log.info("dispatcher %s stopped", self.worker_id)

    async def run_until_idle(self, *, max_rounds: int = 1000) -> None:
        """Handle everything that is due now (the CLI's `receive` and tests)."""
        for _ in range(max_rounds):
            claimed = await self._claim()
            if not claimed and not self._in_flight:
                return
            if self._in_flight:
                await asyncio.wait(list(self._in_flight.values()), return_when=asyncio.FIRST_COMPLETED)

    async def _claim(self) -> list[ClaimedDelivery]:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return []
        # One delivery per repository at a time in this process keeps a repository's events in order.
        claimed = await self.services.inbox.claim(
            self.worker_id, free, self.lease, exclude_repos=sorted(self._busy_repos),
            worker_id=self.services.worker_id,
        )
        # A repository's deliveries claimed together run one after another in one task, in order.
        groups: dict[str, list[ClaimedDelivery]] = {}
        for delivery in claimed:
            groups.setdefault(delivery.repository or f"#{delivery.id}", []).append(delivery)
        for key, group in groups.items():
            if not key.startswith("#"):
                self._busy_repos.add(key)
            task = asyncio.create_task(self._handle_group(key, group), name=f"deliveries-{group[0].id}")
            for delivery in group:
                self._in_flight[delivery.id] = task
        return claimed

    async def _handle_group(self, key: str, group: list[ClaimedDelivery]) -> None:
        # Leased and not yet recorded done or failed: the heartbeat keeps these leases alive.
        leased = [d.id for d in group]
        handled: list[ClaimedDelivery] = []
        heartbeat = asyncio.create_task(self._heartbeat(leased))
        loop = asyncio.get_running_loop()
        flushed = loop.time()
        try:
            spent = 0.0
            for index, delivery in enumerate(group):
                if index:
                    # While this process is answering webhooks, give way for INGRESS_YIELD times the time the last
                    # delivery took (or until they are answered; 50 ms at most): handling keeps a share of the
                    # loop, acknowledgements the rest.
                    await asyncio.sleep(0)
                    await self.services.ingress.wait_idle(min(spent * INGRESS_YIELD, INGRESS_FIRST_SECONDS))
                began = loop.time()
                token = delivery_id_var.set(delivery.id)
                try:
                    if await self._run_handlers(delivery):
                        handled.append(delivery)
                    else:
                        leased.remove(delivery.id)  # its failure is recorded and its lease given back
                finally:
                    delivery_id_var.reset(token)
                    spent = loop.time() - began
                if handled and loop.time() - flushed >= COMPLETE_EVERY_SECONDS:
                    await self._complete(handled, leased)
                    flushed = loop.time()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                # Handled deliveries are marked done together, one statement for the group (or per second of a
                # slow group). A crash before it leaves them leased; they are handled again when the lease runs
                # out, and handlers are idempotent.
                await self._complete(handled, leased)
            finally:
                for delivery in group:
                    self._in_flight.pop(delivery.id, None)
                self._busy_repos.discard(key)

    async def _complete(self, handled: list[ClaimedDelivery], leased: list[str]) -> None:
        """Mark `handled` done and empty it (whatever the outcome: a failed write means they run again later)."""
        batch = list(handled)
        handled.clear()
        if not batch:
            return
        for delivery in batch:
            leased.remove(delivery.id)
        try:
            done = await self.services.inbox.complete_many([d.id for d in batch], self.worker_id)
        except Exception:
            log.exception("could not mark %d handled deliveries done; they will be handled again", len(batch))
            return
        if self.services.metrics is not None:
            for delivery in batch:
                if delivery.id in done:
                    self.services.metrics.delivery_handled(delivery.event)

    async def _run_handlers(self, delivery: ClaimedDelivery) -> bool:
        """Run a delivery's handlers; True when they all succeeded (the caller marks it done), else the failure is
        recorded here."""
        inbox = self.services.inbox
        metrics = self.services.metrics
        if metrics is not None:
            metrics.delivery_claimed(delivery.attempts, delivery.received_at, utcnow())
        try:
            event = Event.from_json(
                delivery.id,
                delivery.event,
                delivery.payload,
                installation_id=delivery.installation_id,
                repository=delivery.repository,
                attempt=delivery.attempts,
            )
            async with asyncio.timeout(self.timeout):
                ran = await self.router.dispatch(event, self.services)
        except Exception as exc:
            error = _describe(exc)
            if metrics is not None:
                metrics.delivery_failed(delivery.event, dead=delivery.attempts >= self.max_attempts)
            if delivery.attempts >= self.max_attempts:
                log.error("%s failed %d times, parked as dead: %s", delivery.event, delivery.attempts, error)
                await inbox.fail(delivery.id, self.worker_id, error, retry_at=None)
            else:
                delay = backoff_delay(delivery.attempts, self.retry_base)
                log.warning("%s failed (attempt %d), retrying in %.1fs: %s", delivery.event,
                            delivery.attempts, delay, error)
                await inbox.fail(delivery.id, self.worker_id, error, retry_at=utcnow() + timedelta(seconds=delay))
            return False
        log.info("handled %s (%d handlers)", event.key, ran)
        return True

    async def _heartbeat(self, delivery_ids: list[str]) -> None:
        """Keep the leases of a group's unfinished deliveries alive while the group works through them."""
        interval = max(0.05, self.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            if not delivery_ids:
                continue
            try:
                await self.services.inbox.renew_many(list(delivery_ids), self.worker_id, self.lease,
                                                     worker_id=self.services.worker_id)
            except Exception:
                log.exception("could not renew the leases of %d deliveries", len(delivery_ids))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "handler timed out"
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return redact(text)[:MAX_ERROR_CHARS]
