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
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from bot import messages
from bot.github import GitHubError, NotFound
from bot.ranking import DIVERGENCE_SHOWN, Ranking
from bot.services import Services
from bot.store.models import JUDGE_KIND, Run, RunState, Trigger
from bot.store.pulls import DELIVERED
from bot.store.runs import RunStore
from bot.untrusted import clean_untrusted

if TYPE_CHECKING:
    from bot.runs.ranking import Ranker

log = logging.getLogger(__name__)

CELL_CHARS: Final = 200
RENDERED_CACHE: Final = 2048
# How far back the first scan looks, and how much a scan overlaps the previous one (commit order across processes).
FIRST_SCAN: Final = timedelta(minutes=10)
SCAN_OVERLAP: Final = timedelta(seconds=5)
PROGRESS_INTERVAL: Final = 30.0
"""Seconds between edits that change no milestone of the fan-out."""
RANKING_RECHECK: Final = 60.0


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
    if run.kind == JUDGE_KIND and run.state == RunState.SUCCEEDED:
        return messages.RUN_JUDGE_DONE
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
    """The agent's name, its attempt when it has several, and (for the tracking comment) the run id; a judge run
    says it is the judge."""
    if run.kind == JUDGE_KIND:
        template = messages.RUN_JUDGE_CELL if with_run else messages.RUN_JUDGE
        return template.format(agent=cell(run.agent), run=run.id)
    if with_run:
        template = messages.RUN_AGENT_ATTEMPT_CELL if attempts > 1 else messages.RUN_AGENT_CELL
    else:
        template = messages.RUN_AGENT_ATTEMPT if attempts > 1 else "{agent}"
    return template.format(agent=cell(run.agent), attempt=run.attempt, run=run.id)


def state_text(state: str) -> str:
    return messages.RUN_STATE_LABELS.get(state, state)


def milestones(trigger: Trigger, runs: Sequence[Run]) -> tuple[object, ...]:
    """What of a fan-out is news at once (module docstring): whether it started, which runs wait and why, and
    whether every run has settled (final, and a succeeded one's pull request delivered); and the fan-out's
    ranking, once published or re-ranked."""
    started = any(run.state not in (RunState.QUEUED, RunState.WAITING) for run in runs)
    waiting = tuple((run.id, run.reason) for run in runs if run.state == RunState.WAITING)
    settled = bool(runs) and all(
        run.state in RunState.FINAL and (run.state != RunState.SUCCEEDED or run.progress == DELIVERED) for run in runs
    )
    return started, waiting, settled, trigger.ranking


def path_text(path: str) -> str:
    """A changed path (the agent chose it) as inline code in a table or a line."""
    return "`" + cell(path, 120).replace("`", "'") + "`"


def paths_text(paths: Sequence[str]) -> str:
    shown = ", ".join(path_text(path) for path in paths[:DIVERGENCE_SHOWN])
    more = len(paths) - DIVERGENCE_SHOWN
    return shown + (messages.RANKING_MORE.format(count=more) if more > 0 else "")


def render_ranking(ranking: Ranking) -> str:
    """A fan-out's ranking as the tracking comment shows it: a head line, the note (a judge that failed), the
    comparison table and what the attempts disagree on."""
    attempts: dict[str, int] = {}
    for row in ranking.rows:
        attempts[row.agent] = max(attempts.get(row.agent, 0), row.attempt)
    first = next((row for row in ranking.rows if row.pr is not None), None)
    source = messages.RANKING_SOURCES.get(ranking.source, ranking.source)
    lines = [messages.RANKING_HEAD.format(source=source, first=messages.RUN_PULL_REQUEST.format(number=first.pr))
             if first is not None and first.pr is not None else messages.RANKING_HEAD_NO_PR.format(source=source)]
    if ranking.note:
        lines.append(messages.RANKING_NOTE.format(note=cell(ranking.note).replace("_", "\\_")))
    rows = []
    for row in ranking.rows:
        name = (messages.RUN_AGENT_ATTEMPT if attempts[row.agent] > 1 else "{agent}").format(
            agent=cell(row.agent), attempt=row.attempt)
        where = messages.RUN_PULL_REQUEST.format(number=row.pr) if row.pr is not None else messages.RANKING_NO_PR
        rows.append(messages.RANKING_TABLE_ROW.format(
            rank=row.rank, agent=f"{name} · {where}", verify=messages.RANKING_VERIFY.get(row.verify, "–"),
            ci=messages.RANKING_CI.get(row.ci, "–") if row.pr is not None else "–",
            lines=f"+{row.added}/−{row.removed}", files=row.files,
            cost=f"${row.cost_usd:.2f}" if row.cost_usd is not None else "–", reason=cell(row.reason),
        ))
    lines.append("\n".join([messages.RANKING_TABLE_HEAD, *rows]))
    divergence = ranking.divergence
    notes = []
    if divergence.files_only_some:
        notes.append(messages.RANKING_FILES_ONLY_SOME.format(paths=paths_text(divergence.files_only_some)))
    if divergence.tests_only_some:
        notes.append(messages.RANKING_TESTS_ONLY_SOME.format(paths=paths_text(divergence.tests_only_some)))
    if not notes and sum(row.files > 0 for row in ranking.rows) > 1:
        notes.append(messages.RANKING_AGREE)
    if notes:
        lines.append("\n".join(f"- {note}" for note in notes))
    return "\n\n".join(lines)


def render_tracking(trigger: Trigger, runs: Sequence[Run]) -> str:
    """The tracking comment of `trigger`: one row per run, then the fan-out's ranking once it is published."""
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
    ranking = Ranking.from_json(trigger.ranking)
    if ranking is not None:
        table = f"{table}\n\n{render_ranking(ranking)}"
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
        ranker: Ranker | None = None,
        on_ranked: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        self.services = services
        self.runs = runs
        self.ranker = ranker
        self.on_ranked = on_ranked
        """Called with the trigger's id once its ranking is published (the worker refreshes the reviewer briefs)."""
        """Publishes a fan-out's ranking (bot.runs.ranking) when its comment is next rendered after its runs end."""
        self.interval = interval
        self.progress_interval = max(interval, progress_interval)
        self.monotonic = monotonic
        self._dirty: set[int] = set()
        self._last_edit: dict[int, float] = {}
        # Per trigger: the text last written, and its milestones then.
        self._rendered: OrderedDict[int, tuple[str, tuple[object, ...]]] = OrderedDict()
        self._progress_only: set[int] = set()  # dirty, and last seen to change no milestone
        self._scanned_to: datetime | None = None
        # Fan-outs whose ranking waits on their deadline: looked at again every RANKING_RECHECK seconds, since a
        # deadline passing changes no run.
        self._awaiting_rank: set[int] = set()
        self._rank_checked = monotonic()

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
        if self._awaiting_rank and self.monotonic() - self._rank_checked >= RANKING_RECHECK:
            self._rank_checked = self.monotonic()
            self._dirty.update(self._awaiting_rank)

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
        if trigger is None:
            return False
        runs = await self.runs.runs_of_trigger(trigger_id)
        self._awaiting_rank.discard(trigger_id)
        if self.ranker is not None and trigger.ranked_at is None:
            try:
                if await self.ranker.settle(trigger, runs):
                    trigger = await self.runs.trigger(trigger_id) or trigger
                    if self.on_ranked is not None:
                        await self.on_ranked(trigger_id)
                elif self.ranker.waiting(runs):
                    self._awaiting_rank.add(trigger_id)
            except Exception:  # the ranking is tried again at the next edit; the runs' table is shown meanwhile
                log.exception("could not rank the attempts of trigger %s", trigger_id)
        if trigger.tracking_comment_id is None or self.services.github is None:
            return False
        body = render_tracking(trigger, runs)
        states = milestones(trigger, runs)
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
