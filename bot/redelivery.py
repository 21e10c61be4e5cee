"""Missed deliveries come back: ask GitHub to redeliver what failed to reach Kickoff (an outage, a deploy).

GitHub does not retry a failed webhook delivery by itself, but keeps every attempt for 3 days (7 on GitHub
Enterprise Server) under `GET /app/hook/deliveries` (App JWT, newest first, `cursor` pagination). One delivery may
have several attempts, all with the same `guid`, which is the `X-GitHub-Delivery` the inbox is keyed by. A guid is
redelivered once per pass, and only when no attempt of it succeeded, the inbox does not hold it, and Kickoff did not
refuse it on purpose (a 4xx: a bad signature or body would be refused again). `MAX_REDELIVERIES` bounds the tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from bot.github import GitHubError, GitHubVerbs, HookDelivery
from bot.services import Services
from bot.store.inbox import Inbox

log = logging.getLogger(__name__)

MAX_REDELIVERIES: Final = 3
"""Redelivery attempts of one guid after which Kickoff stops asking (each pass would otherwise ask again)."""
STARTUP_LOOKBACK: Final = timedelta(days=3)
"""How far back `serve` looks at start-up: all that GitHub.com keeps."""
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class RedeliveryReport:
    """What one pass saw and did; `redelivered` holds the attempt each redelivery was asked for."""

    seen: int = 0
    guids: int = 0
    redelivered: list[HookDelivery] = field(default_factory=list)
    succeeded: int = 0
    stored: int = 0
    refused: int = 0
    gave_up: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.redelivered)} redelivered; skipped {self.succeeded} delivered, {self.stored} already in the "
            f"inbox, {self.refused} refused by Kickoff, {self.gave_up} after {MAX_REDELIVERIES} redeliveries "
            f"({self.seen} attempts of {self.guids} deliveries looked at)"
            + (f"; {len(self.errors)} failed" if self.errors else "")
        )


def parse_since(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `3d`, `1w` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 3d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


async def redeliver_missed(
    github: GitHubVerbs, inbox: Inbox, *, since: timedelta, now: datetime, dry_run: bool = False
) -> RedeliveryReport:
    """One pass over the attempts of the last `since`: ask GitHub to redeliver each missed delivery once."""
    cutoff = now - since
    report = RedeliveryReport()
    attempts: dict[str, list[HookDelivery]] = {}
    async for attempt in github.list_hook_deliveries():
        if attempt.delivered_at < cutoff:
            break  # newest first: everything after this is older
        report.seen += 1
        attempts.setdefault(attempt.guid, []).append(attempt)
    report.guids = len(attempts)
    candidates: dict[str, HookDelivery] = {}
    for guid, tries in attempts.items():
        if any(t.succeeded for t in tries):
            report.succeeded += 1
        elif any(t.refused for t in tries):
            report.refused += 1
        elif sum(t.redelivery for t in tries) >= MAX_REDELIVERIES:
            report.gave_up += 1
        else:
            candidates[guid] = max(tries, key=lambda t: t.id)
    stored = await _stored(inbox, list(candidates))
    report.stored = len(stored)
    for guid, latest in sorted(candidates.items(), key=lambda item: item[1].id):
        if guid in stored:
            continue
        if not dry_run:
            try:
                await github.redeliver_hook_delivery(latest.id)
            except GitHubError as exc:
                report.errors.append(f"{guid}: {exc}")
                log.warning("could not ask GitHub to redeliver %s (%s): %s", guid, latest.key, exc)
                continue
        report.redelivered.append(latest)
    if report.redelivered or report.errors:
        log.info("redelivery: %s", report.summary())
    return report


async def _stored(inbox: Inbox, guids: Sequence[str], chunk: int = 500) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(guids), chunk):
        found |= await inbox.exists(guids[start : start + chunk])
    return found


async def redeliver_periodically(services: Services, stop: asyncio.Event, every: float) -> None:
    """`serve`'s loop: one pass at start-up over all that GitHub keeps, then one every `every` seconds over the
    last few periods, so an outage of Kickoff loses nothing."""
    since = STARTUP_LOOKBACK
    while not stop.is_set():
        github = services.github
        if github is not None:
            try:
                await redeliver_missed(github, services.inbox, since=since, now=services.clock())
            except Exception as exc:
                log.warning("redelivery pass failed, trying again in %.0f s: %s", every, exc)
        since = max(timedelta(hours=1), timedelta(seconds=3 * every))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
