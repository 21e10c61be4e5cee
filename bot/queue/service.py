"""The review queue's I/O: build a snapshot of one queue from `pull_requests`, the facts kept from webhooks
(`bot.queue.facts`) and GitHub, decide (`reconcile`), then write the `review-queue` checks that changed and run the
merge lane (`effects`).

A reconcile is idempotent: with nothing changed it writes nothing. It runs on every event that can move a queue
(`bot.handlers.queue`, focused on the pull requests the event is about), on the queue commands, and from a periodic
sweep that repairs missed webhooks and times out checks that never report. Reconciles of one queue are serialized.

GitHub reads of a focused reconcile: the base branch's commit, the live permission of each approving or
change-requesting reviewer of the focused entries (once per reviewer per reconcile, see `ReviewerPermissions`), and
only the facts the database does not hold or trust (first sight, a downtime past `QueueService.trust`); the entries
the merge lane acts on, or that a check would grant `success`, are read again first. A full reconcile (no focus:
the sweep, a push to the base) reads per open entry the pull request and its labels; then, only for
entries that could be eligible, their check runs, statuses and reviews; it repairs the stored facts and counts the
drift (`FactStore.drift`). Both read changed files (cached per head commit) when two or more are eligible and
`hold_overlaps` is on, and one comparison for an approved head (cached per head and base commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from bot.config import RepoConfig
from bot.config.model import Queue as QueueConfig
from bot.github import GitHubAPI, NotFound, PermissionDenied, PullRequestInfo, ValidationFailed
from bot.github.models import Permission
from bot.prs.opening import Opened
from bot.queue.effects import QueueWriter, Updated
from bot.queue.facts import (
    FactStore,
    KnownPull,
    StoredDecision,
    decision_json,
    labels_json,
    latest_runs,
    pull_json,
    reviews_json,
)
from bot.queue.model import Entry, Plan, Review, Snapshot, UpdateBranch, blocker, diff
from bot.queue.reconcile import (
    AGENT_CHECK,
    COUNTED,
    Facts,
    Outcome,
    Reviews,
    ci_of,
    classify_push,
    closed_entry,
    entry_of,
    judge_ci,
    latest_reviews,
    may_be_eligible,
    plan_queue,
    review_of,
    snapshot_of,
    timed_out_head,
    wants_checks,
)
from bot.queue.store import CLOSED, MERGED, OPEN, Memory, QueueKey, QueueStore, is_kickoff, memory_of
from bot.queue.texts import Reason
from bot.services import Services
from bot.store.db import Busy
from bot.store.models import PullRequest

log = logging.getLogger(__name__)

COMMIT_FACTS_DAYS = 7
"""Stored checks of a commit no webhook or read touched for this long are forgotten (old heads)."""
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """A small LRU of facts that never change for their key (files of a commit, ancestry of two commits)."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def fit(self, size: int) -> None:
        """Hold at least `size` items from now on (it never shrinks)."""
        self._size = max(self._size, size)



class ReviewerPermissions:
    """Reviewers' live permissions for one reconcile: each asked at most once, all forgotten when it ends, so a
    collaborator whose access was lowered stops counting at the next reconcile."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, str, str], Permission] = {}
        self.asked = 0

    async def get(self, github: GitHubAPI, key: QueueKey, login: str) -> Permission:
        cache_key = (key.installation_id, key.repository.lower(), login.lower())
        found = self._held.get(cache_key)
        if found is not None:
            return found
        self.asked += 1
        try:
            found = await github.get_collaborator_permission(key.installation_id, key.owner, key.repo, login)
        except (PermissionDenied, ValidationFailed) as exc:
            # GitHub will not say (e.g. a login that is not a user): the review does not count, the queue goes on.
            log.warning("%s: no permission for reviewer %s (%s); their review does not count", key.repository,
                        login, exc)
            found = "none"
        self._held[cache_key] = found
        return found


class QueueService:
    """Reconciles queues for one process (`Features.queue`, built by the composition root)."""

    def __init__(
        self,
        services: Services,
        *,
        config_for: Callable[[QueueKey], Any] | None = None,
        files_cache: int = 2048,
    ) -> None:
        self.services = services
        self.settings = services.settings.queue
        self.store = QueueStore(services.store, clock=services.clock)
        self.facts = FactStore(services.store, clock=services.clock)
        """The pull requests' facts kept from webhooks (`bot.queue.facts`); `facts.drift` counts the repairs."""
        self._config_for = config_for
        self._locks: dict[str, asyncio.Lock] = {}
        self._files: _Cache[tuple[str, str], frozenset[str]] = _Cache(files_cache)
        """Each open entry's changed files by head commit (the overlaps need them); it grows to twice the entries of
        the queues this service reconciles, since an LRU smaller than the entries it serves in turn misses on every
        one of them, every reconcile (the pull requests' files listed again: one read per entry)."""
        self._queue_sizes: dict[QueueKey, int] = {}
        self._contains: _Cache[tuple[str, str, str], bool] = _Cache()
        self.writer = QueueWriter(services, self.store, self.facts)
        self.deferred: dict[int, datetime] = {}
        """Installations whose queues the last sweep left alone because their GitHub budget ran low, and since when
        (the dashboard says so; a sweep with budget again clears them)."""
        self.link = services.settings.public_url.rstrip("/") + "/"
        """The dashboard, where the whole order of every queue is (named in each queued entry's check)."""

    @property
    def checks_timeout(self) -> timedelta:
        return timedelta(minutes=self.settings.checks_timeout_minutes)

    @property
    def trust(self) -> timedelta:
        """How long facts read from GitHub are trusted without a new read: two sweeps and a minute, so a downtime
        (no sweep, webhooks lost) longer than that reads everything again."""
        return timedelta(seconds=2 * self.settings.sweep_seconds + 60)

    def trust_for(self, installation_id: int) -> timedelta:
        """`trust`, or no limit while the installation's sweep is deferred for its budget: that gap is known, not a
        delivery gap, and reading whole queues on every event would spend the budget the sweep is saving."""
        return timedelta.max if installation_id in self.deferred else self.trust

    async def reconcile(
        self, key: QueueKey, *, wait: bool = True, focus: Collection[int] | None = None, base_moved: bool = False
    ) -> Outcome:
        """Bring one queue's checks and merge lane up to date.

        `focus`: the pull requests an event was about. Then every entry's facts come from the database where they
        are trusted (`bot.queue.facts`), and only the focused entries' review decisions are worked out again with
        live permissions: a reconcile for one pull request's event reads that one at most. Without `focus` (the
        sweep) every entry is read from GitHub, and what differs from the stored facts is repaired and counted
        (`facts.drift`). `base_moved` (a push to the base branch): every entry's pull request is read again (whether
        it now conflicts with its base), while its labels, reviews and checks, which a base push does not change,
        come from the stored facts where trusted.

        One reconcile of a repository at a time across every worker of the database (`Store.exclusive`): an event
        waits for the one under way; with `wait=False` (the sweep) a repository being reconciled raises `Busy`.
        """
        async with self._exclusive(key, wait=wait):
            reviewers = ReviewerPermissions()  # this reconcile's: never carried over to the next one
            if base_moved and focus is None:
                focus = ()  # nobody's event: reviews from the stored decisions
            outcome = await self._reconcile(key, reviewers, focus, base_moved=base_moved)
            if outcome.merged:
                # The head merged: the queue advances now rather than at the next webhook.
                again = await self._reconcile(key, reviewers, focus)
                again.merged[:0] = outcome.merged
                again.writes[:0] = outcome.writes
                again.updated[:0] = outcome.updated
                again.reads += outcome.reads
                again.drift += outcome.drift
                outcome = again
        for other in outcome.elsewhere:
            await self.reconcile(other, focus=focus)
        return outcome

    @contextlib.asynccontextmanager
    async def _exclusive(self, key: QueueKey, *, wait: bool) -> AsyncIterator[None]:
        # This process's own callers queue on an asyncio lock first, so they do not each hold a connection waiting.
        local = self._locks.setdefault(key.repository, asyncio.Lock())
        if not wait and local.locked():
            raise Busy(key.repository)
        async with local, self.services.store.exclusive(f"queue:{key.repository}", wait=wait):
            yield

    async def reconcile_all(self, keys: Iterable[QueueKey]) -> list[Outcome]:
        """Reconcile several queues, each once, one at a time."""
        return [await self.reconcile(key) for key in dict.fromkeys(keys)]

    def budget_low(self, installation_id: int) -> bool:
        """Whether the installation's rate limit is nearly spent (below `LOW_BUDGET_SHARE` of its limit, by the last
        `x-ratelimit-*` headers the gateway saw); a fake gateway that does not tell is never low."""
        low = getattr(self.services.github, "budget_low", None)
        return bool(low(installation_id)) if callable(low) else False

    async def seed_opened(self, opened: Opened) -> None:
        """Kickoff just opened a pull request: keep what it was told (the pull request, its labels, no reviews,
        its head's checks from webhooks, its files from the run), so the first reconcile reads none of it."""
        await self.facts.seed_opened(opened.repository, opened.pull, opened.labels, fresh=opened.fresh)
        if opened.head_sha is not None and opened.head_sha == opened.pull.head_sha and opened.files:
            self._files.put((opened.repository, opened.head_sha), frozenset(opened.files))

    async def sweep(self) -> int:
        """Reconcile every queue with an open entry, reading every entry from GitHub (repairing what webhooks
        missed, counted in `facts.drift`); failures are logged and left for the next sweep. The sweep is the one
        read that can wait: the queues of an installation whose rate limit is nearly spent are deferred to a later
        sweep (events still reconcile them, on stored facts however old: see `trust_for`), and `deferred` says
        which."""
        count = 0
        await self.facts.prune(timedelta(days=COMMIT_FACTS_DAYS))
        for key in await self.store.queues():
            if self.budget_low(key.installation_id):
                if key.installation_id not in self.deferred:
                    log.warning("GitHub rate limit of installation %s is nearly spent: the queue sweep waits",
                                key.installation_id)
                    self.deferred[key.installation_id] = self.services.clock()
                continue
            self.deferred.pop(key.installation_id, None)
            try:
                await self.reconcile(key, wait=False)
                count += 1
            except Busy:
                log.debug("queue of %s is being reconciled elsewhere; the sweep skips it", key.repository)
            except Exception:
                log.exception("queue sweep of %s → %s failed", key.repository, key.base)
        return count

    async def config(self, key: QueueKey) -> RepoConfig:
        """The repository's config from its default branch (defaults when the file is broken: the queue still
        runs, and the broken file is reported where it is used)."""
        if self._config_for is not None:
            found: RepoConfig = await self._config_for(key)
            return found
        return await self.services.configs.load_or_defaults(key.installation_id, key.repository)

    async def update(
        self,
        key: QueueKey,
        row: PullRequest,
        head_sha: str,
        base_sha: str,
        config: RepoConfig,
        memory: Memory | None = None,
        *,
        agent_on_conflict: bool | None = None,
    ) -> Updated:
        """Bring one pull request up to date with its base (see `QueueWriter.update`)."""
        return await self.writer.update(
            key, row, head_sha, base_sha, config, memory, agent_on_conflict=agent_on_conflict
        )

    async def _reconcile(
        self, key: QueueKey, reviewers: ReviewerPermissions, focus: Collection[int] | None,
        force: frozenset[int] = frozenset(), *, base_moved: bool = False,
    ) -> Outcome:
        """One pass over one queue: read the facts (stored ones where trusted), decide, then store and write what
        changed. The merge lane acts, and a check grants `success`, only on facts read from GitHub in this pass: an
        entry that would act on stored facts is read again first."""
        outcome = Outcome(key)
        rows = await self.store.queue_rows(key.repository, key.base)
        self._queue_sizes[key] = len(rows)
        self._files.fit(2 * sum(self._queue_sizes.values()))
        if not rows:
            return outcome
        github = self.services.require_github()
        config = await self.config(key)
        now = self.services.clock()
        known = await self.facts.pulls(key.repository, [row.number for row in rows if row.state == OPEN])
        reading = _Reading(focus, force, known, now, self.trust_for(key.installation_id), base_moved=base_moved)
        facts, closed = await self._open_facts(github, key, rows, reading, outcome)
        if not facts and not closed:
            return outcome
        try:
            outcome.reads += 1
            base_sha = await github.get_branch_sha(key.installation_id, key.owner, key.repo, key.base)
        except NotFound:
            log.info("base branch %s of %s is gone; its queue waits", key.base, key.repository)
            return outcome
        memories = await self._live_facts(github, key, config.queue, facts, reading, reviewers, outcome)

        entries: dict[int, Entry] = {}
        changes: dict[int, dict[str, Any]] = {}
        for number, fact in facts.items():
            entries[number], memories[number], changes[number] = entry_of(fact, memories[number], now)
        for row in closed:
            entries[row.number] = closed_entry(row)
            memories[row.number] = memory_of(row)
        snapshot, result = await self._decide(github, key, config.queue, base_sha, entries, memories, changes, now,
                                              outcome)
        unverified = _acting(result, memories, facts) - reading.fresh
        if unverified:
            # Stored facts would move the merge lane or grant `success`: read those entries from GitHub first.
            again = await self._reconcile(key, reviewers, focus, force | unverified, base_moved=base_moved)
            again.reads += outcome.reads
            again.elsewhere |= outcome.elsewhere
            return again
        outcome.snapshot, outcome.plan = snapshot, result

        rows_by_number = {fact.row.number: fact.row for fact in facts.values()} | {row.number: row for row in closed}
        await self.writer.save_state(rows_by_number, memories, changes, result)
        await self.writer.write_checks(github, key, config.queue, rows_by_number, memories, result, outcome)
        await self.writer.act(github, key, config, rows_by_number, memories, result, outcome)
        return outcome

    async def _open_facts(
        self, github: GitHubAPI, key: QueueKey, rows: Sequence[PullRequest], reading: _Reading, outcome: Outcome
    ) -> tuple[dict[int, Facts], list[PullRequest]]:
        """The pull request of each open row (stored where trusted, else read and stored; the row kept current
        with it), and the rows that closed with a check to finish (a row never checked is dequeued without a
        word)."""
        facts: dict[int, Facts] = {}
        closed: list[PullRequest] = []
        for row in rows:
            if row.state != OPEN:
                if row.queue_check is None:
                    await self.store.update(row.id, dequeued=Reason.CLOSED.value)  # never checked: nothing to say
                else:
                    closed.append(row)
                continue
            stored = reading.known.get(row.number)
            if reading.trusted(row.number) and not reading.base_moved and stored is not None \
                    and stored.pull is not None:
                pull = stored.pull
            else:
                outcome.reads += 1
                try:
                    pull = await github.get_pull_request(key.installation_id, key.owner, key.repo, row.number)
                except NotFound:
                    log.warning("%s#%s: GitHub does not know the pull request; left out", key.repository, row.number)
                    continue
                if not reading.trusted(row.number):
                    reading.fresh.add(row.number)  # read in full this pass (its checks and reviews too)
                if reading.was_trusted(row.number) and stored is not None and _drifted(stored.pull, pull):
                    self._drift(outcome, "pulls", key, row.number)
                await self.facts.put_pull(key.repository, row.number, pull=pull_json(pull),
                                          synced_at=reading.now, stale=False)
            found = await self._refresh_row(row, pull, key, outcome)
            if found is None:
                continue
            if pull.state != OPEN:
                closed.append(found)
                continue
            facts[row.number] = Facts(found, pull)
        return facts, closed

    async def _live_facts(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        facts: dict[int, Facts],
        reading: _Reading,
        reviewers: ReviewerPermissions,
        outcome: Outcome,
    ) -> dict[int, Memory]:
        """Labels, CI and reviews where they can matter (into `facts`): stored where trusted, else read and
        stored. The queue's memory of each entry, as the CI verdicts leave it."""
        ignore = {queue.check_name, AGENT_CHECK}
        memories: dict[int, Memory] = {}
        commits = await self.facts.commits(key.repository, [fact.pull.head_sha for fact in facts.values()])
        for number, fact in facts.items():
            row = fact.row
            stored = reading.known.get(number)
            trusted = reading.trusted(number) and stored is not None
            memories[number] = memory_of(row)
            if not is_kickoff(row) or may_be_eligible(row, fact.pull):
                if trusted and stored is not None and stored.labels is not None:
                    fact.labels = stored.labels
                else:
                    outcome.reads += 1
                    fact.labels = await self._labels(github, key, number)
                    if reading.was_trusted(number) and stored is not None and stored.labels is not None \
                            and stored.labels != fact.labels:
                        self._drift(outcome, "labels", key, number)
                    if stored is None or stored.labels != fact.labels:
                        await self.facts.put_pull(key.repository, number, labels=labels_json(fact.labels))
            if not wants_checks(fact):
                continue
            sha = fact.pull.head_sha
            commit = commits.get(sha)
            if trusted and commit is not None and commit.trusted(reading.now, reading.trust):
                fact.runs = commit.run_list()
                fact.statuses = commit.status_list()
            else:
                outcome.reads += 2
                runs = await github.list_check_runs(key.installation_id, key.owner, key.repo, sha)
                own = self.services.settings.app_id
                # Kickoff's own checks count for nothing (and their webhooks are ignored): not kept.
                by_id = latest_runs({
                    r.id: (r.name, r.status, r.conclusion, r.app_id) for r in runs
                    if r.head_sha == sha and r.name not in ignore and (own is None or r.app_id != own)
                })
                fact.runs = [by_id[run_id] for run_id in sorted(by_id)]
                fact.statuses = await github.list_commit_statuses(key.installation_id, key.owner, key.repo, sha)
                drifted = await self.facts.synced_commit(key.repository, sha, by_id, fact.statuses, known=commit)
                if drifted and reading.was_trusted(number):
                    self._drift(outcome, "checks", key, number)
            fact.checked = True
            fact.reviews = await self._reviews(github, key, number, stored, trusted, reading, reviewers, outcome)
        judge_ci(facts, memories, ignore=ignore, own_app_id=self.services.settings.app_id)
        return memories

    async def _decide(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        base_sha: str,
        entries: dict[int, Entry],
        memories: dict[int, Memory],
        changes: dict[int, dict[str, Any]],
        now: datetime,
        outcome: Outcome,
    ) -> tuple[Snapshot, Plan]:
        """The plan, with the facts only some entries need: the files of the eligible ones for overlap holds, one
        comparison for an approved head, and the deadline of a head waiting on CI (checks that never report)."""
        eligible = [e for e in entries.values() if e.in_queue and blocker(e) is None]
        if queue.hold_overlaps and len(eligible) > 1:
            for entry in eligible:
                files = await self._changed_files(github, key, entry, outcome)
                entries[entry.number] = replace(entry, files=files)
        snapshot = snapshot_of(key, base_sha, entries)
        result = plan_queue(snapshot, queue, now, link=self.link)
        if result.head is not None and entries[result.head].review == "approved":
            head = entries[result.head]
            if await self._contains_base(github, key, head.head_sha, base_sha, outcome):
                entries[head.number] = replace(head, contains_base=True)
                snapshot = snapshot_of(key, base_sha, entries)
                result = plan_queue(snapshot, queue, now, link=self.link)
        late = timed_out_head(result, memories, now, self.checks_timeout)
        if late is not None:
            since = memories[late].pending_since
            log.info("%s#%s: required checks pending since %s; dequeued", key.repository, late, since)
            entries[late] = replace(entries[late], dequeued=Reason.CHECKS_TIMED_OUT)
            changes[late]["dequeued"] = Reason.CHECKS_TIMED_OUT.value
            snapshot = snapshot_of(key, base_sha, entries)
            result = plan_queue(snapshot, queue, now, link=self.link)
        return snapshot, result

    async def _reviews(
        self,
        github: GitHubAPI,
        key: QueueKey,
        number: int,
        stored: KnownPull | None,
        trusted: bool,
        reading: _Reading,
        reviewers: ReviewerPermissions,
        outcome: Outcome,
    ) -> Reviews:
        """The pull request's review decision from reviewers who may approve (see `REVIEW_FLOOR`): worked out with
        live permissions for the pull requests this reconcile is about (and any read from GitHub), the stored
        decision for the others (worked out alike when they were last read or had an event)."""
        listed = stored.review_list() if trusted and stored is not None else None
        if listed is None:
            outcome.reads += 1
            listed = await github.list_reviews(key.installation_id, key.owner, key.repo, number)
            if stored is not None and stored.reviews is not None and reading.was_trusted(number) \
                    and latest_reviews(stored.review_list() or []) != latest_reviews(listed):
                self._drift(outcome, "reviews", key, number)
            if stored is None or stored.review_list() != sorted(listed, key=lambda r: r.id):
                await self.facts.put_pull(key.repository, number, reviews=reviews_json(listed))
        elif stored is not None and stored.decision is not None and not reading.about(number):
            decision = stored.decision
            return Reviews(_review_state(decision.decision), decision.uncounted_approvals,
                           decision.uncounted_changes)
        held: dict[str, Permission] = {}
        before = reviewers.asked
        for login, review in latest_reviews(listed).items():
            if review.state in COUNTED:
                held[login] = await reviewers.get(github, key, review.author)
        outcome.reads += reviewers.asked - before
        found = review_of(listed, held)
        decided = StoredDecision(found.decision, found.uncounted_approvals, found.uncounted_changes)
        if stored is None or stored.decision != decided:
            await self.facts.put_pull(key.repository, number, decision=decision_json(decided))
        return found

    def _drift(self, outcome: Outcome, kind: str, key: QueueKey, number: int) -> None:
        """A full read found a trusted fact wrong: a webhook was missed (or arrived out of order)."""
        setattr(self.facts.drift, kind, getattr(self.facts.drift, kind) + 1)
        outcome.drift += 1
        log.info("%s#%s: %s drifted from the stored facts; repaired", key.repository, number, kind)

    async def _refresh_row(
        self, row: PullRequest, pull: PullRequestInfo, key: QueueKey, outcome: Outcome
    ) -> PullRequest | None:
        """Keep the row's facts current from the live pull request; None when it left this queue."""
        now = self.services.clock()
        values: dict[str, Any] = {}
        if pull.merged:
            values.update(state=MERGED, merged_at=row.merged_at or now)
        elif pull.state != OPEN:
            values.update(state=CLOSED, closed_at=row.closed_at or now)
        if pull.base_ref != row.base_ref:
            values["base_ref"] = pull.base_ref
            outcome.elsewhere.add(QueueKey(key.installation_id, key.repository, pull.base_ref))
        for name, value in (("head_sha", pull.head_sha), ("title", pull.title), ("draft", pull.draft)):
            if getattr(row, name) != value:
                values[name] = value
        if values:
            await self.store.update(row.id, **values)
            for name, value in values.items():
                setattr(row, name, value)
        if pull.merged or pull.base_ref != key.base:
            return None
        return row

    async def _labels(self, github: GitHubAPI, key: QueueKey, number: int) -> frozenset[str]:
        return frozenset(await github.list_labels(key.installation_id, key.owner, key.repo, number))

    async def _changed_files(self, github: GitHubAPI, key: QueueKey, entry: Entry, outcome: Outcome) -> frozenset[str]:
        cache_key = (key.repository, entry.head_sha)
        found = self._files.get(cache_key)
        if found is None:
            outcome.reads += 1
            paths = await github.list_pull_request_files(key.installation_id, key.owner, key.repo, entry.number)
            found = frozenset(paths)
            self._files.put(cache_key, found)
        return found

    async def _contains_base(
        self, github: GitHubAPI, key: QueueKey, head_sha: str, base_sha: str, outcome: Outcome
    ) -> bool:
        cache_key = (key.repository, head_sha, base_sha)
        found = self._contains.get(cache_key)
        if found is None:
            outcome.reads += 1
            try:
                comparison = await github.compare_commits(key.installation_id, key.owner, key.repo, base_sha, head_sha)
            except NotFound:
                return False  # no common history (yet): not up to date
            found = comparison.head_contains_base
            self._contains.put(cache_key, found)
        return found


@dataclass
class _Reading:
    """Which stored facts one reconcile pass may use, and which entries it read from GitHub (`fresh`)."""

    focus: Collection[int] | None
    force: frozenset[int]
    known: Mapping[int, KnownPull]
    now: datetime
    trust: timedelta
    fresh: set[int] = field(default_factory=set)
    base_moved: bool = False  # every pull request is read again; the rest is stored where trusted

    def was_trusted(self, number: int) -> bool:
        """The stored facts were trusted (so a difference from GitHub is drift, not first sight)."""
        stored = self.known.get(number)
        return stored is not None and stored.trusted(self.now, self.trust)

    def trusted(self, number: int) -> bool:
        """Use the stored facts in this pass."""
        return self.focus is not None and number not in self.force and self.was_trusted(number)

    def about(self, number: int) -> bool:
        """The pass is about this entry (its event): its review decision is worked out with live permissions."""
        return self.focus is None or number in self.focus or number in self.force


def _acting(result: Plan, memories: Mapping[int, Memory], facts: Mapping[int, Facts]) -> set[int]:
    """The open entries the merge lane will act on, or whose check will grant `success`."""
    acting: set[int] = set()
    for action in result.actions:
        if isinstance(action, UpdateBranch):
            memory = memories[action.number]
            if (memory.updated_from, memory.update_base) == (action.expected_head_sha, action.base_sha):
                continue  # done once for this head and base: nothing is done now
        acting.add(action.number)
    current = {number: memory.check for number, memory in memories.items() if memory.check is not None}
    acting |= {write.number for write in diff(current, result.checks) if write.check.conclusion == "success"}
    return acting & set(facts)


def _drifted(stored: PullRequestInfo | None, live: PullRequestInfo) -> bool:
    """The stored pull request differs from GitHub's (mergeable aside: GitHub recomputes it after every push)."""
    return stored is None or replace(stored, mergeable=None) != replace(live, mergeable=None)


def _review_state(value: str) -> Review:
    if value == "approved":
        return "approved"
    if value == "changes_requested":
        return "changes_requested"
    return "pending"


__all__ = [
    "AGENT_CHECK",
    "Outcome",
    "QueueKey",
    "QueueService",
    "ReviewerPermissions",
    "Reviews",
    "Updated",
    "ci_of",
    "classify_push",
    "latest_reviews",
    "review_of",
]
