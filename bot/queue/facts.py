"""The pull request facts the queue needs, kept in the database from the webhooks Kickoff already receives.

Per pull request (`pull_facts`): the pull request as GitHub last described it (head, state, draft, title, base,
mergeable as far as the payload says), its labels, its reviews (each reviewer's reviews by id) and the last review
decision worked out with live permissions. Per commit (`commit_facts`): its check runs and commit statuses.

Every webhook applies in any order and any number of times: a pull request payload only replaces an older one (by
GitHub's `updated_at`), a check run never goes back from `completed` to `in_progress`, a commit status only replaces
one with a lower id, and a review is kept by id (a dismissal wins). A fact is *trusted* once it was read from GitHub
in full (`synced_at`) within `trust` (the sweep's window, so a downtime longer than that re-reads everything), and
is not marked `stale`; facts never read, or only heard of from a webhook, are read from GitHub at the next reconcile
that needs them ("first sight"). The periodic sweep reads everything again and counts the drift it repaired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.github import PullRequestInfo
from bot.github.models import CommitStatus, PullReview
from bot.store.db import Store
from bot.store.models import CommitFacts, PullFacts, utcnow

log = logging.getLogger(__name__)

RunFact = tuple[str, str, str | None, int | None]  # name, status, conclusion, app id
STATUS_RANK: Final = {"completed": 2, "in_progress": 1}
"""A check run's status only moves forward (`queued`, `requested`, `waiting`, `pending` are 0)."""


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A review decision as last worked out with live permissions (see `bot.queue.reconcile.Reviews`)."""

    decision: str
    uncounted_approvals: tuple[str, ...] = ()
    uncounted_changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KnownPull:
    """One pull request's stored facts."""

    number: int
    pull: PullRequestInfo | None
    stamp: datetime | None
    labels: frozenset[str] | None
    reviews: Mapping[int, tuple[str, str]] | None
    decision: StoredDecision | None
    synced_at: datetime | None
    stale: bool

    def trusted(self, now: datetime, trust: timedelta) -> bool:
        return self.pull is not None and not self.stale and self.synced_at is not None and now - self.synced_at <= trust

    def review_list(self) -> list[PullReview] | None:
        if self.reviews is None:
            return None
        return [PullReview(review_id, login, state) for review_id, (login, state) in sorted(self.reviews.items())]


@dataclass(frozen=True, slots=True)
class KnownCommit:
    """One commit's stored check runs and statuses."""

    sha: str
    runs: Mapping[int, RunFact]
    statuses: Mapping[str, tuple[str, int]]
    synced_at: datetime | None

    def trusted(self, now: datetime, trust: timedelta) -> bool:
        return self.synced_at is not None and now - self.synced_at <= trust

    def run_list(self) -> list[RunFact]:
        return [self.runs[run_id] for run_id in sorted(self.runs)]

    def status_list(self) -> list[CommitStatus]:
        return [CommitStatus(context, state) for context, (state, _id) in sorted(self.statuses.items())]


@dataclass
class Drift:
    """What the sweep found different from the stored facts, by kind (read by `bot.metrics` later:
    `QueueService.facts.drift`)."""

    pulls: int = 0
    labels: int = 0
    reviews: int = 0
    checks: int = 0

    @property
    def total(self) -> int:
        return self.pulls + self.labels + self.reviews + self.checks


def latest_runs(runs: Mapping[int, RunFact]) -> dict[int, RunFact]:
    """The latest run (highest id) of each name and App, as GitHub counts them."""
    latest: dict[tuple[str, int | None], int] = {}
    for run_id, run in runs.items():
        name = (run[0], run[3])
        latest[name] = max(run_id, latest.get(name, run_id))
    return {run_id: runs[run_id] for run_id in sorted(latest.values())}


def pull_json(pull: PullRequestInfo) -> str:
    return json.dumps(asdict(pull), sort_keys=True)


def _pull_of(text: str | None) -> PullRequestInfo | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        return PullRequestInfo(**data)
    except (ValueError, TypeError):
        return None


def labels_json(labels: Iterable[str]) -> str:
    return json.dumps(sorted(set(labels)))


def _labels_of(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return frozenset(str(item) for item in data) if isinstance(data, list) else None


def reviews_json(reviews: Iterable[PullReview]) -> str:
    return json.dumps({str(r.id): [r.author, r.state.upper()] for r in reviews}, sort_keys=True)


def _reviews_of(text: str | None) -> dict[int, tuple[str, str]] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
        return {int(key): (str(value[0]), str(value[1])) for key, value in data.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def decision_json(decision: StoredDecision) -> str:
    return json.dumps(asdict(decision), sort_keys=True)


def _decision_of(text: str | None) -> StoredDecision | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        return StoredDecision(str(data["decision"]), tuple(data["uncounted_approvals"]),
                              tuple(data["uncounted_changes"]))
    except (ValueError, TypeError, KeyError):
        return None


def runs_json(runs: Mapping[int, RunFact]) -> str:
    return json.dumps({str(run_id): list(run) for run_id, run in runs.items()}, sort_keys=True)


def _runs_of(text: str | None) -> dict[int, RunFact]:
    try:
        data = json.loads(text or "{}")
        return {int(k): (str(v[0]), str(v[1]), v[2], v[3]) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        return {}


def statuses_json(statuses: Mapping[str, tuple[str, int]]) -> str:
    return json.dumps({context: list(value) for context, value in statuses.items()}, sort_keys=True)


def _statuses_of(text: str | None) -> dict[str, tuple[str, int]]:
    try:
        data = json.loads(text or "{}")
        return {str(k): (str(v[0]), int(v[1])) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        return {}


def _known_pull(row: PullFacts) -> KnownPull:
    return KnownPull(
        number=row.number, pull=_pull_of(row.pull), stamp=row.pull_stamp, labels=_labels_of(row.labels),
        reviews=_reviews_of(row.reviews), decision=_decision_of(row.decision), synced_at=row.synced_at,
        stale=row.stale,
    )


def _known_commit(row: CommitFacts) -> KnownCommit:
    return KnownCommit(row.sha, _runs_of(row.runs), _statuses_of(row.statuses), row.synced_at)


class FactStore:
    """Reads and writes of `pull_facts` and `commit_facts`; each call is its own short transaction."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self.drift = Drift()
        """Drift the full reads found (the sweep's repairs) since this process started: a metric to export."""

    # Reading.

    async def pulls(self, repository: str, numbers: Iterable[int]) -> dict[int, KnownPull]:
        wanted = list(numbers)
        if not wanted:
            return {}
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(PullFacts).where(PullFacts.repository == repository, PullFacts.number.in_(wanted))
            )
            return {row.number: _known_pull(row) for row in rows.all()}

    async def pull(self, repository: str, number: int) -> KnownPull | None:
        return (await self.pulls(repository, [number])).get(number)

    async def commits(self, repository: str, shas: Iterable[str]) -> dict[str, KnownCommit]:
        wanted = sorted(set(shas))
        if not wanted:
            return {}
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(CommitFacts).where(CommitFacts.repository == repository, CommitFacts.sha.in_(wanted))
            )
            return {row.sha: _known_commit(row) for row in rows.all()}

    # Writing (upserts: a missing row is inserted, a row inserted meanwhile is updated).

    async def put_pull(self, repository: str, number: int, **values: Any) -> None:
        await self._upsert(PullFacts, {"repository": repository, "number": number}, values)

    async def put_commit(self, repository: str, sha: str, **values: Any) -> None:
        await self._upsert(CommitFacts, {"repository": repository, "sha": sha}, values)

    async def _upsert(self, table: type[PullFacts] | type[CommitFacts], key: dict[str, Any],
                      values: dict[str, Any]) -> None:
        values = {"updated_at": self.clock(), **values}
        where = [getattr(table, name) == value for name, value in key.items()]
        for _attempt in range(2):
            async with self.store.sessions.begin() as session:
                result = await session.execute(update(table).where(*where).values(**values)
                                               .execution_options(synchronize_session=False))
                if getattr(result, "rowcount", 0):
                    return
            try:
                async with self.store.sessions.begin() as session:
                    defaults: dict[str, Any] = {"runs": "{}", "statuses": "{}"} if table is CommitFacts else {}
                    session.add(table(**{**defaults, **key, **values}))
                return
            except IntegrityError:
                continue  # inserted by another delivery meanwhile: update it
        raise RuntimeError(f"could not store facts for {key}")

    async def seed_opened(
        self, repository: str, pull: PullRequestInfo, labels: Iterable[str] | None, *, fresh: bool
    ) -> None:
        """Kickoff just opened `pull` (GitHub's answer to `POST /pulls`), so its facts need no first-sight read:
        the pull request itself, and when Kickoff created it just now (`fresh`, not adopted from an earlier
        attempt) also its labels (the ones Kickoff adds; `labels` None when adding them failed), its reviews
        (none yet) and its head commit's checks. That commit was pushed moments ago by the run's runner, so every
        check run and status it gets arrives as a webhook, which `observe_check_run` keeps for Kickoff's own
        branches even before the pull request is known (`bot.handlers.queue`). Whatever a webhook stored first
        wins: a seed only fills what is unknown. A lost webhook is repaired by the sweep, and the merge lane reads
        GitHub again before it acts (`bot.queue.service`)."""
        now = self.clock()
        known = await self.pull(repository, pull.number)
        values: dict[str, Any] = {"stale": False}
        if known is None or known.pull is None:
            values["pull"] = pull_json(pull)
        if known is None or known.synced_at is None:
            values["synced_at"] = now
        if fresh:
            if labels is None:
                values["labels"] = None  # adding them failed: unknown, read at the next reconcile
            elif known is None or known.labels is None:
                values["labels"] = labels_json(labels)
            if known is None or known.reviews is None:
                values["reviews"] = reviews_json([])
        await self.put_pull(repository, pull.number, **values)
        if fresh and pull.head_sha:
            commit = (await self.commits(repository, [pull.head_sha])).get(pull.head_sha)
            if commit is None or commit.synced_at is None:
                await self.put_commit(repository, pull.head_sha, synced_at=now)

    async def observe_new_head(self, repository: str, sha: str) -> None:
        """A `pull_request.synchronize` to `sha`: a commit pushed just now, so its check runs and statuses all
        arrive as webhooks from here on and its stored checks are trusted without a read. (A push back to an
        older commit whose checks Kickoff never heard of shows too few checks until the sweep reads it; the merge
        lane reads GitHub before it acts either way.)"""
        commit = (await self.commits(repository, [sha])).get(sha)
        if commit is None or commit.synced_at is None:
            await self.put_commit(repository, sha, synced_at=self.clock())

    async def mark_stale(self, repository: str, numbers: Iterable[int]) -> None:
        """These pull requests' facts are read from GitHub again at their next reconcile."""
        wanted = list(numbers)
        if not wanted:
            return
        async with self.store.sessions.begin() as session:
            await session.execute(
                update(PullFacts).where(PullFacts.repository == repository, PullFacts.number.in_(wanted))
                .values(stale=True).execution_options(synchronize_session=False)
            )

    async def prune(self, older_than: timedelta) -> int:
        """Forget the checks of commits no webhook or read touched for `older_than` (old heads)."""
        cutoff = self.clock() - older_than
        async with self.store.sessions.begin() as session:
            result = await session.execute(delete(CommitFacts).where(CommitFacts.updated_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    # Webhooks: each applies in any order, any number of times.

    async def observe_pull(
        self, repository: str, pull: PullRequestInfo, labels: Iterable[str] | None, stamp: datetime | None
    ) -> bool:
        """A `pull_request` payload: kept unless a newer one (by `updated_at`) is already stored. True if kept."""
        known = await self.pull(repository, pull.number)
        if known is not None and known.stamp is not None and stamp is not None and stamp < known.stamp:
            return False
        values: dict[str, Any] = {"pull": pull_json(pull), "pull_stamp": stamp}
        if labels is not None:
            values["labels"] = labels_json(labels)
        if known is not None and known.pull == pull and (labels is None or known.labels == frozenset(labels)) \
                and known.stamp == stamp:
            return True  # a duplicate: nothing to write
        await self.put_pull(repository, pull.number, **values)
        return True

    async def observe_labels(self, repository: str, number: int, labels: Iterable[str],
                             stamp: datetime | None) -> None:
        """An `issues.labeled`/`unlabeled` of a pull request: its whole label set, unless a newer one is stored."""
        known = await self.pull(repository, number)
        if known is None:
            await self.put_pull(repository, number, labels=labels_json(labels), pull_stamp=stamp)
            return
        if known.stamp is not None and stamp is not None and stamp < known.stamp:
            return
        if known.labels != frozenset(labels):
            values: dict[str, Any] = {"labels": labels_json(labels)}
            if stamp is not None:
                values["pull_stamp"] = stamp
            await self.put_pull(repository, number, **values)

    async def observe_review(self, repository: str, number: int, review: PullReview) -> None:
        """A `pull_request_review` payload: the review kept by id; a dismissal of it wins over its first state."""
        known = await self.pull(repository, number)
        if known is None or known.reviews is None:
            return  # the reviews were never read: the next reconcile reads them all
        state = review.state.upper()
        reviews = dict(known.reviews)
        previous = reviews.get(review.id)
        if previous is not None and previous[1] == "DISMISSED":
            state = "DISMISSED"
        if previous == (review.author, state):
            return
        reviews[review.id] = (review.author, state)
        await self.put_pull(repository, number, reviews=json.dumps(
            {str(k): list(v) for k, v in sorted(reviews.items())}, sort_keys=True))

    async def observe_check_run(self, repository: str, sha: str, run_id: int, run: RunFact) -> None:
        """A `check_run` payload: the run's status only moves forward."""
        known = (await self.commits(repository, [sha])).get(sha)
        runs = dict(known.runs) if known is not None else {}
        previous = runs.get(run_id)
        if previous is not None and STATUS_RANK.get(previous[1], 0) > STATUS_RANK.get(run[1], 0):
            return  # a late delivery of an earlier state
        if previous == run:
            return
        # GitHub counts the latest run of each name (a re-run is a new run): an older one gives way, a late one
        # of an older run is not kept.
        same = [other for other, fact in runs.items() if (fact[0], fact[3]) == (run[0], run[3]) and other != run_id]
        if any(other > run_id for other in same):
            return
        for other in same:
            del runs[other]
        runs[run_id] = run
        await self.put_commit(repository, sha, runs=runs_json(runs))

    async def observe_status(self, repository: str, sha: str, context: str, state: str, status_id: int) -> None:
        """A `status` payload: replaces the context's state unless a later status (higher id) is stored."""
        known = (await self.commits(repository, [sha])).get(sha)
        statuses = dict(known.statuses) if known is not None else {}
        previous = statuses.get(context)
        if previous is not None and previous[1] >= status_id:
            return
        statuses[context] = (state, status_id)
        await self.put_commit(repository, sha, statuses=statuses_json(statuses))

    async def synced_commit(self, repository: str, sha: str, runs: Mapping[int, RunFact],
                            statuses: Iterable[CommitStatus], *, known: KnownCommit | None) -> bool:
        """What GitHub said of a commit's checks, now trusted. True when it differs from what was stored."""
        seen = known.statuses if known is not None else {}
        merged = {s.context: (s.state, seen[s.context][1] if s.context in seen else -1) for s in statuses}
        drift = known is not None and known.synced_at is not None and (
            dict(known.runs) != dict(runs) or {k: v[0] for k, v in known.statuses.items()}
            != {k: v[0] for k, v in merged.items()}
        )
        await self.put_commit(repository, sha, runs=runs_json(runs), statuses=statuses_json(merged),
                              synced_at=self.clock())
        return drift


__all__ = [
    "Drift",
    "FactStore",
    "KnownCommit",
    "KnownPull",
    "RunFact",
    "StoredDecision",
    "decision_json",
    "labels_json",
    "latest_runs",
    "pull_json",
    "reviews_json",
]
