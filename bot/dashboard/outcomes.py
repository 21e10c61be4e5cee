"""Outcome metrics: per repository and agent, what the agents' work became over the last `WINDOW` (30 days).

One query layer for the dashboard's outcome table and chart, `GET /api/outcomes`, `kickoff status` and the
`kickoff_outcome_*` gauges of `/metrics`. Definitions (docs/operations.md, "Outcomes"):

- **runs**: the agent's runs that finished in the window (new work, follow-ups and fixes), and **cost**: the sum of
  the costs they reported (None when none reported one).
- **pull requests**: those opened by those runs, and what became of them: **merged**, **closed** unmerged (rejected,
  or superseded by a merged sibling), still **open**. **Acceptance rate**: merged / (merged + closed); open ones are
  not decided yet. **Median time to merge**: from opened to merged, over the merged ones (the mean of the middle two
  for an even count). **Cost per merged PR**: the cost of every run in the window (failed attempts too) / merged.
- **review rounds**: the times a pull request was sent back for more work after it opened, counted two ways and
  taken as the larger, not the sum (one round usually shows both): the reviews that requested changes
  (`CHANGES_REQUESTED`, kept from webhooks in `pull_facts.reviews`; one dismissed since no longer counts), and the
  follow-ups a person asked for on it (`/agent …` in a comment, a review or a review comment: a trigger on the pull
  request). Kickoff's own fix runs (red CI, a conflict) and Retry buttons are not review rounds.

Every read is an index range (tests/dashboard/test_query_plans.py): runs by `ix_runs_finished`, their pull requests
by `uq_pull_requests_run`, reviews by `uq_pull_facts_repository_number`, follow-ups by `ix_triggers_issue`; the
figures are counted in Python over that bounded set, so the median is the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute

from bot.store.db import Store
from bot.store.models import PullFacts, PullRequest, Run, Trigger
from bot.store.pulls import CLOSED, MERGED, OPENING

WINDOW: Final = timedelta(days=30)
"""Outcomes are counted over this window: a pull request takes days to be decided, so 24 hours would say little."""
MAX_WINDOW: Final = timedelta(days=90)
"""The longest window `GET /api/outcomes?days=` may ask for."""
CHANGES_REQUESTED: Final = "CHANGES_REQUESTED"
PERSON_SOURCES: Final = ("comment", "review", "review_comment")
"""Trigger sources that are a person asking for more work on a pull request (not `fix`, `check`, `label`)."""
CHUNK: Final = 1000
"""Values per `IN (…)`: well under SQLite's and asyncpg's bound parameter limits."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one agent's work in one repository became over the window."""

    repository: str
    agent: str
    runs: int
    cost_usd: float | None
    opened: int
    merged: int
    closed: int
    open: int
    review_rounds: int
    merge_seconds_median: float | None

    @property
    def decided(self) -> int:
        return self.merged + self.closed

    @property
    def acceptance(self) -> float | None:
        """Merged over decided (merged or closed unmerged); None while none is decided."""
        return self.merged / self.decided if self.decided else None

    @property
    def cost_per_merged(self) -> float | None:
        return self.cost_usd / self.merged if self.cost_usd is not None and self.merged else None

    @property
    def rounds_per_pr(self) -> float | None:
        return self.review_rounds / self.opened if self.opened else None

    @property
    def merge_median(self) -> timedelta | None:
        return None if self.merge_seconds_median is None else timedelta(seconds=self.merge_seconds_median)

    def as_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "agent": self.agent,
            "runs": self.runs,
            "cost_usd": _round(self.cost_usd),
            "prs_opened": self.opened,
            "prs_merged": self.merged,
            "prs_closed_unmerged": self.closed,
            "prs_open": self.open,
            "acceptance_rate": _round(self.acceptance),
            "merge_seconds_median": _round(self.merge_seconds_median),
            "cost_per_merged_usd": _round(self.cost_per_merged),
            "review_rounds": self.review_rounds,
            "review_rounds_per_pr": _round(self.rounds_per_pr),
        }


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The outcome of every repository × agent with a run finished in `[since, now]`."""

    now: datetime
    window: timedelta
    rows: tuple[Outcome, ...]

    @property
    def since(self) -> datetime:
        return self.now - self.window

    @property
    def days(self) -> int:
        return round(self.window.total_seconds() / 86400)

    @property
    def label(self) -> str:
        """How the labels name the window: `30 days`."""
        return f"{self.days} day{'' if self.days == 1 else 's'}"

    def of(self, repository: str) -> tuple[Outcome, ...]:
        return tuple(row for row in self.rows if row.repository == repository)

    @property
    def repositories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row.repository for row in self.rows))

    def as_json(self) -> dict[str, Any]:
        return {
            "window_days": self.days,
            "since": self.since.isoformat(),
            "now": self.now.isoformat(),
            "outcomes": [row.as_json() for row in self.rows],
        }


@dataclass(slots=True)
class _Tally:
    runs: int = 0
    costs: list[float] = field(default_factory=list)
    opened: int = 0
    merged: int = 0
    closed: int = 0
    open: int = 0
    rounds: int = 0
    merge_seconds: list[float] = field(default_factory=list)


def review_rounds(reviews: str | None, followups: int) -> int:
    """A pull request's review rounds: its reviews that requested changes (`pull_facts.reviews`, JSON
    `{review id: [login, STATE]}`) or the follow-ups people asked for on it, whichever is more."""
    requested = 0
    if reviews:
        try:
            kept = json.loads(reviews)
        except ValueError:
            kept = None
        if isinstance(kept, dict):
            requested = sum(
                1 for value in kept.values()
                if isinstance(value, list) and len(value) == 2 and value[1] == CHANGES_REQUESTED
            )
    return max(requested, followups)


async def outcomes(store: Store, now: datetime, *, repo: str | None = None, window: timedelta = WINDOW) -> Outcomes:
    """Per repository and agent, the runs finished since `now - window` and what their pull requests became."""
    since = now - window
    tallies: dict[tuple[str, str], _Tally] = {}
    async with store.sessions() as session:
        # The window of runs alone (`ix_runs_finished`): a filter on the repository would let the planner read all
        # of that repository's history along `ix_runs_repository_*` instead; one repository is picked out here.
        in_window = (Run.finished_at >= since) & (Run.finished_at <= now)
        finished = await session.execute(select(Run.id, Run.repository, Run.agent, Run.cost_usd).where(in_window))
        openers: dict[int, str] = {}  # run id → agent
        for run_id, repository, agent, cost in finished:
            if repo is not None and repository != repo:
                continue
            tally = tallies.setdefault((repository, agent), _Tally())
            tally.runs += 1
            if cost is not None:
                tally.costs.append(cost)
            openers[run_id] = agent
        # The pull requests those runs opened (a follow-up opened none; asked of every run, since `runs.pr_number`
        # is written after the pull request's row), each by `uq_pull_requests_run`. The ids are listed, not a
        # subquery: PostgreSQL would answer a subquery with a hash join over every pull request.
        pulls: list[tuple[str, int, str, str, datetime, datetime | None]] = []
        for chunk in _chunks(sorted(openers)):
            found = await session.execute(
                select(PullRequest.run_id, PullRequest.repository, PullRequest.number, PullRequest.state,
                       PullRequest.created_at, PullRequest.merged_at)
                .where(_among(PullRequest.run_id, chunk, store.dialect))
            )
            # One still `opening` is reserved, not on GitHub yet (its number is a placeholder): not opened.
            pulls.extend((r, n, openers[run_id], s, c, m) for run_id, r, n, s, c, m in found
                         if run_id is not None and s != OPENING)
        # Their reviews and follow-ups: `repository IN (…) AND number IN (…)` for the whole set at once (an index
        # lookup per pair on SQLite; PostgreSQL may take each repository's range of the index instead), the pairs
        # that are not among them dropped here.
        repositories = sorted({repository for repository, *_ in pulls})
        wanted = {(repository, number) for repository, number, *_ in pulls}
        reviews: dict[tuple[str, int], str | None] = {}
        followups: Counter[tuple[str, int]] = Counter()
        for chunk in _chunks(sorted({number for _, number, *_ in pulls})):
            facts = await session.execute(
                select(PullFacts.repository, PullFacts.number, PullFacts.reviews)
                .where(PullFacts.repository.in_(repositories), _among(PullFacts.number, chunk, store.dialect))
            )
            reviews.update(((r, n), text) for r, n, text in facts if (r, n) in wanted)
            asked = await session.execute(
                select(Trigger.repository, Trigger.issue_number).where(
                    Trigger.repository.in_(repositories), _among(Trigger.issue_number, chunk, store.dialect),
                    Trigger.is_pull_request.is_(True), Trigger.source.in_(PERSON_SOURCES),
                )
            )
            followups.update((r, n) for r, n in asked if (r, n) in wanted)
    for repository, number, agent, state, created_at, merged_at in pulls:
        tally = tallies.setdefault((repository, agent), _Tally())
        tally.opened += 1
        tally.rounds += review_rounds(reviews.get((repository, number)), followups[(repository, number)])
        if state == MERGED:
            tally.merged += 1
            if merged_at is not None:
                tally.merge_seconds.append(max(0.0, (merged_at - created_at).total_seconds()))
        elif state == CLOSED:
            tally.closed += 1
        else:
            tally.open += 1
    rows = tuple(
        Outcome(
            repository=repository, agent=agent, runs=t.runs, cost_usd=math.fsum(t.costs) if t.costs else None,
            opened=t.opened, merged=t.merged, closed=t.closed, open=t.open, review_rounds=t.rounds,
            merge_seconds_median=statistics.median(t.merge_seconds) if t.merge_seconds else None,
        )
        for (repository, agent), t in sorted(tallies.items(), key=lambda item: (item[0][0].lower(), item[0]))
    )
    return Outcomes(now=now, window=window, rows=rows)


def _among(column: InstrumentedAttribute[Any], values: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """`column IN (…)`; on PostgreSQL `column = ANY(:array)`, one bound array rather than a parameter per value
    (rendering hundreds of cast parameters costs more CPU than the query)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(Integer)))
    return column.in_(values)


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
