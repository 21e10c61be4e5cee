"""Webhooks out: signed deliveries through an ordered async outbox, with bounded retries and a pause switch.

One worker per App sends its deliveries strictly in order; a failing delivery is retried (connection refused,
timeouts, 5xx) with backoff before the next one goes, then stays listed as failed for the redelivery API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from bot.sandbox.state import App, Delivery, DeliveryAttempt

USER_AGENT = "GitHub-Hookshot/sandbox"
MAX_RESPONSE_BODY = 4096


def sign(secret: str, body: bytes) -> dict[str, str]:
    """Both signature headers GitHub sends: HMAC-SHA256 and the legacy HMAC-SHA1."""
    key = secret.encode()
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_delivery(
    *,
    delivery_id: int,
    app: App,
    event: str,
    action: str | None,
    payload: dict[str, Any],
    installation_id: int | None,
    repository_id: int | None,
    now: datetime,
    guid: str | None = None,
    body: bytes | None = None,
    redelivery: bool = False,
) -> Delivery:
    """A delivery ready to send, with GitHub's request headers."""
    raw = body if body is not None else encode(payload)
    guid = guid or str(uuid.uuid4())
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Delivery": guid,
        "X-GitHub-Event": event,
        "X-GitHub-Hook-ID": str(app.id * 10 + 1),
        "X-GitHub-Hook-Installation-Target-ID": str(app.id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
    }
    if app.webhook_secret:
        headers.update(sign(app.webhook_secret, raw))
    return Delivery(
        id=delivery_id,
        guid=guid,
        app_id=app.id,
        event=event,
        action=action,
        installation_id=installation_id,
        repository_id=repository_id,
        body=raw,
        request_headers=headers,
        redelivery=redelivery,
        created_at=now,
    )


class Outbox:
    """Sends deliveries per App in order; retries transient failures `len(retry_delays)` times."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        lookup_app: Callable[[int], App | None],
        retry_delays: Sequence[float] = (0.1, 0.5, 2.0),
        timeout: float = 10.0,
    ) -> None:
        self._clock = clock
        self._lookup_app = lookup_app
        self.retry_delays = list(retry_delays)
        self.timeout = timeout
        self._queues: dict[int, asyncio.Queue[Delivery]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._pending = 0
        self._paused = False
        self._drop = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._client: httpx.AsyncClient | None = None

    @property
    def pending(self) -> int:
        """Deliveries enqueued and not yet finished (including held ones while paused)."""
        return self._pending

    @property
    def paused(self) -> bool:
        return self._paused

    def enqueue(self, delivery: Delivery) -> None:
        """Queue one delivery behind the App's earlier ones. Call on the engine loop."""
        queue = self._queues.get(delivery.app_id)
        if queue is None:
            queue = self._queues[delivery.app_id] = asyncio.Queue()
            self._workers[delivery.app_id] = asyncio.get_running_loop().create_task(
                self._work(delivery.app_id, queue), name=f"sandbox-outbox-{delivery.app_id}"
            )
        self._pending += 1
        queue.put_nowait(delivery)

    def pause(self, *, drop: bool = False) -> None:
        """Stop sending. Held deliveries go out on resume; with `drop`, each fails at once as undeliverable."""
        self._paused = True
        self._drop = drop
        self._resumed.clear()

    def resume(self) -> None:
        self._paused = False
        self._drop = False
        self._resumed.set()

    async def _work(self, app_id: int, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                if self._paused and self._drop:
                    self._record(delivery, "failed to connect to host", 0, 0.0, {}, None)
                else:
                    await self._resumed.wait()
                    await self._send_with_retries(delivery)
            finally:
                self._pending -= 1
                queue.task_done()

    async def _send_with_retries(self, delivery: Delivery) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                await asyncio.sleep(self.retry_delays[attempt - 1])
                if self._paused and self._drop:
                    return
                await self._resumed.wait()
            transient = await self._send_once(delivery)
            if not transient:
                return

    async def _send_once(self, delivery: Delivery) -> bool:
        """One POST; returns True when the failure is worth a retry."""
        app = self._lookup_app(delivery.app_id)
        if app is None or not app.webhook_url:
            self._record(delivery, "No webhook URL configured", 0, 0.0, {}, None)
            return False
        headers = dict(delivery.request_headers)
        if app.webhook_secret:
            headers.update(sign(app.webhook_secret, delivery.body))
        delivery.request_headers = headers
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)
        started = time.monotonic()
        try:
            response = await self._client.post(app.webhook_url, content=delivery.body, headers=headers)
        except httpx.TimeoutException:
            self._record(delivery, "timed out", 0, time.monotonic() - started, {}, None)
            return True
        except httpx.HTTPError:
            self._record(delivery, "failed to connect to host", 0, time.monotonic() - started, {}, None)
            return True
        elapsed = time.monotonic() - started
        code = response.status_code
        status = "OK" if 200 <= code < 300 else f"Invalid HTTP Response: {code}"
        self._record(delivery, status, code, elapsed, dict(response.headers), response.text[:MAX_RESPONSE_BODY])
        return code >= 500 or code == 429

    def _record(
        self,
        delivery: Delivery,
        status: str,
        code: int,
        duration: float,
        headers: dict[str, str],
        body: str | None,
    ) -> None:
        now = self._clock()
        delivery.status = status
        delivery.status_code = code
        delivery.delivered_at = now
        delivery.duration = duration
        delivery.response_headers = headers
        delivery.response_body = body
        delivery.attempts.append(DeliveryAttempt(now, status, code))

    async def aclose(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
        self._pending = 0
        if self._client is not None:
            await self._client.aclose()
            self._client = None
