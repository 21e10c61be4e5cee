"""Progress reports to Kickoff: POST /api/runs/{id}/report with the per-run secret, a few retries, never fatal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import httpx

from bot import __version__
from bot.runspec import ProgressEvent, RunReport, RunResult

log = logging.getLogger(__name__)

ATTEMPTS: Final = 4
BACKOFF_SECONDS: Final = (0.5, 1.0, 2.0)
TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)


class Reporter:
    """Sends RunReport bodies to `url`; a report that cannot be delivered is logged and dropped (the result file
    stays the record)."""

    def __init__(self, url: str | None, secret: str | None, run_id: int, redact: Callable[[str], str],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.run_id = run_id
        self.sent: list[RunReport] = []
        self._redact = redact
        self._sleep = sleep
        self._client = None
        if url is not None:
            self._client = httpx.Client(
                timeout=TIMEOUT, follow_redirects=False,
                headers={"Authorization": f"Bearer {secret or ''}", "User-Agent": f"kickoff-runner/{__version__}"},
            )

    def send(self, event: ProgressEvent, detail: str | None = None, result: RunResult | None = None) -> bool:
        report = RunReport(run_id=self.run_id, event=event, at=datetime.now(UTC), detail=detail, result=result)
        self.sent.append(report)
        if self._client is None or self.url is None:
            return True
        body = report.model_dump_json()
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                self._sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
            try:
                response = self._client.post(self.url, content=body, headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the server refused it (bad secret, unknown run): retrying will not help
        log.warning("report %s for run %s not delivered: %s", event, self.run_id, self._redact(problem))
        return False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
