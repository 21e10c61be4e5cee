"""The tracking comment: one comment per trigger, edited in place as its runs change state.

Edits are coalesced: a comment is edited at most once per `interval` seconds, and never when the rendered text is
unchanged (a running run shows when it started, not a ticking duration, so an idle fan-out renders identically).
Each edit costs a request against the installation's rate limit (issue 15), so only a fan-out's milestones are
shown within `interval`: its first run starting, a run waiting (and why), and every run settled (ended, and its
pull request open). Everything else (a run starting or ending while others still run, its progress reports:
cloning, the agent, verifying, pushing; a pull request opening) waits for `progress_interval` (30 s) since the
last edit: a fan-out of three costs three edits or so, not one per report.
Which triggers changed is read from the runs table (`updated_at`), so the tracker also sees changes made by other
processes (the report endpoint of a `kickoff serve --no-worker`, another worker).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from bot import messages
from bot.github import GitHubError, NotFound
from bot.services import Services
from bot.store.models import Run, RunState, Trigger
from bot.store.pulls import DELIVERED
from bot.store.runs import RunStore
from bot.untrusted import clean_untrusted

log = logging.getLogger(__name__)

CELL_CHARS: Final = 200
RENDERED_CACHE: Final = 2048
# How far back the first scan looks, and how much a scan overlaps the previous one (commit order across processes).
FIRST_SCAN: Final = timedelta(minutes=10)
SCAN_OVERLAP: Final = timedelta(seconds=5)
PROGRESS_INTERVAL: Final = 30.0
"""Seconds between edits that change no milestone of the fan-out."""


def cell(text: str, limit: int = CELL_CHARS) -> str:
    """Text safe inside a Markdown table cell: one line, no pipes, bounded."""
    text = " ".join(clean_untrusted(text, limit * 2).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_text(run: Run) -> str:
    """How long a finished run took; when an active one started (a fixed text, so re-renders are identical)."""
    if run.started_at is None:
        return "–"
    if run.finished_at is None:
        return messages.RUN_SINCE.format(time=run.started_at.strftime("%H:%M"))
    seconds = max(0, int((run.finished_at - run.started_at).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def detail_text(run: Run) -> str:
    """The pull request of a run, or why it is where it is."""
    if run.pr_number is not None and run.kind != "followup" and run.state == RunState.SUCCEEDED:
        if run.reason and run.kind == "new":  # a new run that succeeded has a reason only when it was cut short
            return messages.RUN_PULL_REQUEST_INCOMPLETE.format(number=run.pr_number, reason=cell(run.reason))
        return messages.RUN_PULL_REQUEST.format(number=run.pr_number)
    if run.reason:
        return cell(run.reason)
    if run.state in (RunState.STARTING, RunState.RUNNING) and run.progress:
        return cell(run.progress.replace("_", " "))
    return ""


def agent_text(run: Run, attempts: int, *, with_run: bool = True) -> str:
    """The agent's name, its attempt when it has several, and (for the tracking comment) the run id."""
    if with_run:
        template = messages.RUN_AGENT_ATTEMPT_CELL if attempts > 1 else messages.RUN_AGENT_CELL
    else:
        template = messages.RUN_AGENT_ATTEMPT if attempts > 1 else "{agent}"
    return template.format(agent=cell(run.agent), attempt=run.attempt, run=run.id)


def state_text(state: str) -> str:
    return messages.RUN_STATE_LABELS.get(state, state)


def milestones(runs: Sequence[Run]) -> tuple[object, ...]:
    """What of a fan-out is news at once (module docstring): whether it started, which runs wait and why, and
    whether every run has settled (final, and a succeeded one's pull request delivered)."""
    started = any(run.state not in (RunState.QUEUED, RunState.WAITING) for run in runs)
    waiting = tuple((run.id, run.reason) for run in runs if run.state == RunState.WAITING)
    settled = bool(runs) and all(
        run.state in RunState.FINAL and (run.state != RunState.SUCCEEDED or run.progress == DELIVERED) for run in runs
    )
    return started, waiting, settled


def render_tracking(trigger: Trigger, runs: Sequence[Run]) -> str:
    """The tracking comment of `trigger`: one row per run."""
    attempts: dict[str, int] = {}
    for run in runs:
        attempts[run.agent] = max(attempts.get(run.agent, 0), run.attempt)
    rows = [
        messages.RUN_TABLE_ROW.format(
            agent=agent_text(run, attempts[run.agent]),
            state=state_text(run.state),
            duration=duration_text(run),
            detail=detail_text(run),
        )
        for run in runs
    ]
    done = sum(run.state in RunState.FINAL for run in runs)
    summary = (
        messages.TRACKING_SUMMARY_DONE.format(total=len(runs))
        if runs and done == len(runs)
        else messages.TRACKING_SUMMARY_ACTIVE.format(done=done, total=len(runs))
    )
    table = "\n".join([messages.RUN_TABLE_HEAD, *rows])
    return messages.TRACKING_COMMENT.format(
        task=cell(trigger.task), summary=summary, table=table,
        marker=messages.TRACKING_MARKER.format(trigger_id=trigger.id),
    )


class Tracker:
    """Keeps tracking comments in step with their runs; the worker's tracking loop (bot.worker) calls `refresh()`."""

    def __init__(
        self,
        services: Services,
        runs: RunStore,
        *,
        interval: float = 3.0,
        progress_interval: float = PROGRESS_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.runs = runs
        self.interval = interval
        self.progress_interval = max(interval, progress_interval)
        self.monotonic = monotonic
        self._dirty: set[int] = set()
        self._last_edit: dict[int, float] = {}
        # Per trigger: the text last written, and its milestones then.
        self._rendered: OrderedDict[int, tuple[str, tuple[object, ...]]] = OrderedDict()
        self._progress_only: set[int] = set()  # dirty, and last seen to change no milestone
        self._scanned_to: datetime | None = None

    def note(self, trigger_id: int) -> None:
        """Mark a trigger's comment as possibly out of date."""
        self._dirty.add(trigger_id)
        self._progress_only.discard(trigger_id)

    def due_in(self) -> float | None:
        """Seconds until a pending edit may be made; None when nothing is pending."""
        if not self._dirty:
            return None
        now = self.monotonic()
        return max(0.0, min(self._last_edit.get(t, -self.interval) + self._gap(t) - now for t in self._dirty))

    def _gap(self, trigger_id: int) -> float:
        return self.progress_interval if trigger_id in self._progress_only else self.interval

    async def refresh(self) -> int:
        """Look for triggers whose runs changed, then edit the comments that are due; how many were edited."""
        await self.scan()
        return await self.flush()

    async def scan(self) -> None:
        now = self.services.clock()
        since = (self._scanned_to - SCAN_OVERLAP) if self._scanned_to is not None else now - FIRST_SCAN
        changed = set(await self.runs.triggers_changed_since(since))
        self._dirty |= changed
        self._progress_only -= changed  # something changed since: render it again at the short interval
        self._scanned_to = now

    async def flush(self) -> int:
        edited = 0
        now = self.monotonic()
        for trigger_id in sorted(self._dirty):
            since = now - self._last_edit.get(trigger_id, -self.progress_interval)
            if since < self._gap(trigger_id):
                continue
            try:
                done = await self._update(trigger_id, progress_due=since >= self.progress_interval)
                if done is None:
                    self._progress_only.add(trigger_id)  # kept for later: no milestone changed
                    continue
                self._progress_only.discard(trigger_id)
                if done:
                    edited += 1
                    self._last_edit[trigger_id] = now
                self._dirty.discard(trigger_id)
            except GitHubError as exc:
                log.warning("could not update the tracking comment of trigger %s: %s", trigger_id, exc)
                self._last_edit[trigger_id] = now  # try again after the interval
        if len(self._last_edit) > RENDERED_CACHE:
            for trigger_id, at in list(self._last_edit.items()):
                if trigger_id not in self._dirty and now - at >= self.interval:
                    del self._last_edit[trigger_id]
        return edited

    async def _update(self, trigger_id: int, *, progress_due: bool = True) -> bool | None:
        """Edit the comment if its text changed; None when no milestone changed and `progress_due` is False."""
        trigger = await self.runs.trigger(trigger_id)
        if trigger is None or trigger.tracking_comment_id is None or self.services.github is None:
            return False
        runs = await self.runs.runs_of_trigger(trigger_id)
        body = render_tracking(trigger, runs)
        states = milestones(runs)
        last = self._rendered.get(trigger_id)
        if last is not None and last[0] == body:
            return False
        if last is not None and last[1] == states and not progress_due:
            return None
        owner, _, repo = trigger.repository.partition("/")
        try:
            await self.services.github.edit_comment(
                trigger.installation_id, owner, repo, trigger.tracking_comment_id, body
            )
        except NotFound:
            log.info("the tracking comment of trigger %s is gone; not updating it", trigger_id)
        self._rendered[trigger_id] = (body, states)
        self._rendered.move_to_end(trigger_id)
        while len(self._rendered) > RENDERED_CACHE:
            self._rendered.popitem(last=False)
        return True
