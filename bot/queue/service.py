"""The review queue's I/O: build a snapshot of one queue from `pull_requests` and GitHub, write the `review-queue`
checks that changed, and run the merge lane (bring the head up to date, merge it with `queue.merge: auto`).

A reconcile is idempotent: with nothing changed on GitHub it reads and writes nothing but reads. It runs on every
event that can move a queue (`bot.handlers.queue`), on the queue commands, and from a periodic sweep that repairs
missed webhooks and times out checks that never report. Reconciles of one queue are serialized in this process.

GitHub reads per reconcile: the base branch's commit, and per open entry the pull request and its labels; then,
only for entries that could be eligible, their check runs, statuses and reviews, and the live permission of each
reviewer whose latest review approves or requests changes (once per reviewer per reconcile, see `ReviewerPermissions`);
changed files (cached per head commit) when two or more are eligible and `hold_overlaps` is on; and one comparison
for an approved head (cached per head and base commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import messages
from bot.commands import PRIORITIES, Priority
from bot.config import RepoConfig
from bot.config.model import Queue as QueueConfig
from bot.github import (
    CheckRunAction,
    GitHubAPI,
    GitHubError,
    NotFound,
    PermissionDenied,
    PullRequestInfo,
    ValidationFailed,
)
from bot.github.models import CommitStatus, Permission, PullReview, permission_at_least
from bot.queue.model import (
    CI,
    QUEUE_LABEL,
    REVIEW_FLOOR,
    CheckWrite,
    DesiredCheck,
    Entry,
    Merge,
    Plan,
    Push,
    Review,
    Snapshot,
    UpdateBranch,
    blocker,
    diff,
    next_eligible_since,
    plan,
)
from bot.queue.store import CLOSED, MERGED, OPEN, Memory, QueueKey, QueueStore, as_reason, is_kickoff, memory_of
from bot.queue.texts import Reason, State
from bot.runs.planning import TriggerRequest, plan_trigger
from bot.services import Services
from bot.store.models import PullRequest

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

AGENT_CHECK: Final = "agent-run"
FAILING: Final = frozenset({"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale"})
KEPT_ON_UPDATE: Final = frozenset({Reason.CONFLICT_WITH_BASE, Reason.CHECKS_TIMED_OUT, Reason.CI_FAILED})
"""Dequeue reasons a push that only updates the branch does not clear (a new push of work clears every one)."""
BUTTONS: Final = (
    CheckRunAction(*messages.QUEUE_BUTTON_BUMP),
    CheckRunAction(*messages.QUEUE_BUTTON_REMOVE),
)
NO_BUTTONS: Final = frozenset({State.NOT_IN_QUEUE, State.QUEUE_OFF, State.DEQUEUED})
DECISIVE: Final = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})
COUNTED: Final = frozenset({"APPROVED", "CHANGES_REQUESTED"})


class QueueSettings(BaseSettings):
    """The queue's process settings (env or `.env`), built at start-up."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    sweep_seconds: float = Field(default=300.0, gt=0, validation_alias="KICKOFF_QUEUE_SWEEP_SECONDS")
    checks_timeout_minutes: float = Field(default=120.0, gt=0, validation_alias="KICKOFF_QUEUE_CHECKS_TIMEOUT_MINUTES")


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


class Updated(StrEnum):
    """What bringing a pull request up to date did."""

    UPDATED = "updated"  # GitHub merged the base into it
    CURRENT = "current"  # it already contained the base
    MOVED = "moved"  # its head moved meanwhile
    CONFLICT = "conflict"
    AGENT = "agent"  # it conflicts: an agent rebase run is planned
    NO_AGENT = "no_agent"  # it conflicts and there is no `fix` task for an agent
    FAILED = "failed"  # GitHub refused (recorded as UPDATE_FAILED)


@dataclass
class Outcome:
    """What one reconcile saw and did."""

    key: QueueKey
    snapshot: Snapshot | None = None
    plan: Plan | None = None
    writes: list[CheckWrite] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)  # update-branch calls (or agent rebases planned)
    merged: list[int] = field(default_factory=list)
    reads: int = 0
    elsewhere: set[QueueKey] = field(default_factory=set)  # queues entries moved to (a changed base branch)


@dataclass(frozen=True, slots=True)
class Reviews:
    """The review decision that counts, and who approved or requested changes without counting (logins)."""

    decision: Review = "pending"
    uncounted_approvals: tuple[str, ...] = ()
    uncounted_changes: tuple[str, ...] = ()


@dataclass
class _Facts:
    """One open row's facts from GitHub."""

    row: PullRequest
    pull: PullRequestInfo
    labels: frozenset[str] = frozenset()
    ci: CI = "success"
    failing: tuple[str, ...] = ()
    reviews: Reviews = Reviews()
    checked: bool = False  # CI and reviews were read
    runs: list[tuple[str, str, str | None, int | None]] = field(default_factory=list)
    statuses: list[CommitStatus] = field(default_factory=list)


def ci_of(
    runs: Iterable[tuple[str, str, str | None, int | None]],
    statuses: Iterable[CommitStatus],
    *,
    ignore: set[str],
    own_app_id: int | None,
    expect_checks: bool = False,
) -> tuple[CI, tuple[str, ...]]:
    """The required checks' verdict: every check run (name, status, conclusion, app id) and commit status except
    Kickoff's own; a failure wins over pending. No checks at all is success, unless checks are expected (CI ran
    on this pull request before, or runs on the others): then CI has not started yet."""
    failing: list[str] = []
    pending = False
    seen = 0
    for name, status, conclusion, app_id in runs:
        if name in ignore or (own_app_id is not None and app_id == own_app_id):
            continue
        seen += 1
        if status != "completed":
            pending = True
        elif (conclusion or "") in FAILING:
            failing.append(name)
    for status_ in statuses:
        seen += 1
        if status_.state in ("failure", "error"):
            failing.append(status_.context)
        elif status_.state == "pending":
            pending = True
    if failing:
        return "failure", tuple(dict.fromkeys(failing))
    return ("pending" if pending or (seen == 0 and expect_checks) else "success"), ()


def has_checks(
    runs: Iterable[tuple[str, str, str | None, int | None]], statuses: Sequence[CommitStatus], *, ignore: set[str],
    own_app_id: int | None,
) -> bool:
    """Whether CI reported anything (a check run other than Kickoff's own, or a status) on a commit."""
    return bool(statuses) or any(
        name not in ignore and (own_app_id is None or app_id != own_app_id) for name, _s, _c, app_id in runs
    )


def latest_reviews(reviews: Sequence[PullReview]) -> dict[str, PullReview]:
    """Each reviewer's latest decisive review (APPROVED, CHANGES_REQUESTED or DISMISSED) by lower-case login; a
    later COMMENTED review does not override it, as on GitHub."""
    latest: dict[str, PullReview] = {}
    for item in sorted(reviews, key=lambda r: r.id):
        if item.state in DECISIVE:
            latest[item.author.lower()] = item
    return latest


def review_of(reviews: Sequence[PullReview], held: Mapping[str, Permission]) -> Reviews:
    """GitHub's review decision: each reviewer's latest decisive review, counted only when the reviewer holds at
    least `REVIEW_FLOOR` (`held`, by lower-case login; a reviewer missing from it does not count). Approved with at
    least one counted approval and no counted change request."""
    states: set[str] = set()
    approvals: list[str] = []
    changes: list[str] = []
    for login, review in latest_reviews(reviews).items():
        if review.state not in COUNTED:
            continue
        permission = held.get(login)
        if permission is not None and permission_at_least(permission, REVIEW_FLOOR):
            states.add(review.state)
        else:
            (approvals if review.state == "APPROVED" else changes).append(review.author)
    decision: Review = "pending"
    if "CHANGES_REQUESTED" in states:
        decision = "changes_requested"
    elif "APPROVED" in states:
        decision = "approved"
    return Reviews(decision, tuple(approvals), tuple(changes))


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


def classify_push(memory: Memory, head_sha: str) -> Push:
    """What the pushes since the last reconcile were, for the entry's place (see `next_eligible_since`)."""
    if memory.seen_head is None or memory.seen_head == head_sha:
        return Push.NONE
    if memory.updated_from == memory.seen_head:
        return Push.UPDATE
    if memory.seen_review == "changes_requested":
        return Push.REVIEW_ANSWER
    return Push.OTHER


def buttons_for(state: State) -> tuple[CheckRunAction, ...]:
    """"Move to front" and "Remove" on every queued entry's check (GitHub shows them once the check completes)."""
    return () if state in NO_BUTTONS else BUTTONS


class QueueService:
    """Reconciles queues for one process (`Services.queue`, built by the composition root)."""

    def __init__(
        self,
        services: Services,
        *,
        settings: QueueSettings | None = None,
        config_for: Callable[[QueueKey], Any] | None = None,
    ) -> None:
        self.services = services
        self.settings = settings or QueueSettings()
        self.store = QueueStore(services.store, clock=services.clock)
        self._config_for = config_for
        self._locks: dict[QueueKey, asyncio.Lock] = {}
        self._files: _Cache[tuple[str, str], frozenset[str]] = _Cache()
        self._contains: _Cache[tuple[str, str, str], bool] = _Cache()

    @property
    def checks_timeout(self) -> timedelta:
        return timedelta(minutes=self.settings.checks_timeout_minutes)

    # ---- Entry points ---------------------------------------------------------------------------------------------

    async def reconcile(self, key: QueueKey) -> Outcome:
        """Bring one queue's checks and merge lane up to date with GitHub."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            reviewers = ReviewerPermissions()  # this reconcile's: never carried over to the next one
            outcome = await self._reconcile(key, reviewers)
            if outcome.merged:
                # The head merged: the queue advances now rather than at the next webhook.
                again = await self._reconcile(key, reviewers)
                again.merged[:0] = outcome.merged
                again.writes[:0] = outcome.writes
                again.updated[:0] = outcome.updated
                again.reads += outcome.reads
                outcome = again
        for other in outcome.elsewhere:
            await self.reconcile(other)
        return outcome

    async def reconcile_all(self, keys: Iterable[QueueKey]) -> list[Outcome]:
        """Reconcile several queues, each once, one at a time."""
        return [await self.reconcile(key) for key in dict.fromkeys(keys)]

    async def sweep(self) -> int:
        """Reconcile every queue with an open entry; failures are logged and left for the next sweep."""
        count = 0
        for key in await self.store.queues():
            try:
                await self.reconcile(key)
                count += 1
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

    # ---- One reconcile --------------------------------------------------------------------------------------------

    async def _reconcile(self, key: QueueKey, reviewers: ReviewerPermissions) -> Outcome:
        outcome = Outcome(key)
        rows = await self.store.queue_rows(key.repository, key.base)
        if not rows:
            return outcome
        github = self.services.require_github()
        config = await self.config(key)
        queue = config.queue
        now = self.services.clock()

        facts: dict[int, _Facts] = {}
        closed: list[PullRequest] = []
        for row in rows:
            if row.state != OPEN:
                if row.queue_check is None:
                    await self.store.update(row.id, dequeued=Reason.CLOSED.value)  # never checked: nothing to say
                else:
                    closed.append(row)
                continue
            outcome.reads += 1
            try:
                pull = await github.get_pull_request(key.installation_id, key.owner, key.repo, row.number)
            except NotFound:
                log.warning("%s#%s: GitHub does not know the pull request; left out", key.repository, row.number)
                continue
            found = await self._refresh_row(row, pull, key, outcome)
            if found is None:
                continue
            if pull.state != OPEN:
                closed.append(found)
                continue
            facts[row.number] = _Facts(found, pull)
        if not facts and not closed:
            return outcome

        try:
            outcome.reads += 1
            base_sha = await github.get_branch_sha(key.installation_id, key.owner, key.repo, key.base)
        except NotFound:
            log.info("base branch %s of %s is gone; its queue waits", key.base, key.repository)
            return outcome

        # Live facts, only where they can matter.
        ignore = {queue.check_name, AGENT_CHECK}
        own_app = self.services.settings.app_id
        memories: dict[int, Memory] = {}
        for number, fact in facts.items():
            row = fact.row
            memory = memory_of(row)
            memories[number] = memory
            if not is_kickoff(row) or self._may_be_eligible(row, fact.pull):
                outcome.reads += 1
                fact.labels = await self._labels(github, key, number)
            if not self._may_be_eligible(row, fact.pull) or not (is_kickoff(row) or _queued_label(fact.labels)):
                continue
            outcome.reads += 3
            sha = fact.pull.head_sha
            runs = await github.list_check_runs(key.installation_id, key.owner, key.repo, sha)
            fact.runs = [(r.name, r.status, r.conclusion, r.app_id) for r in runs if r.head_sha == sha]
            fact.statuses = await github.list_commit_statuses(key.installation_id, key.owner, key.repo, sha)
            fact.checked = True
            fact.reviews = await self._reviews(github, key, number, reviewers, outcome)
        reporting = {
            number
            for number, fact in facts.items()
            if fact.checked and has_checks(fact.runs, fact.statuses, ignore=ignore, own_app_id=own_app)
        }
        for number, fact in facts.items():
            if not fact.checked:
                continue
            expect = bool(reporting - {number}) or memories[number].had_checks
            fact.ci, fact.failing = ci_of(fact.runs, fact.statuses, ignore=ignore, own_app_id=own_app,
                                          expect_checks=expect)
            if number in reporting:
                memories[number] = memories[number].evolve(had_checks=True)

        # Entries, with what the queue remembers; `eligible_since` moves on by the model's rule.
        entries: dict[int, Entry] = {}
        changes: dict[int, dict[str, Any]] = {}
        for number, fact in facts.items():
            row, pull, memory = fact.row, fact.pull, memories[number]
            push = classify_push(memory, pull.head_sha)
            dequeued = as_reason(row.dequeued)
            if dequeued is Reason.CLOSED:
                dequeued = None  # reopened
            if push is Push.OTHER or (push is Push.UPDATE and dequeued not in KEPT_ON_UPDATE):
                dequeued = None
            if dequeued is Reason.CHECKS_TIMED_OUT and fact.ci != "pending":
                dequeued = None  # the checks reported after all (a re-run)
            entry = Entry(
                number=number,
                head_sha=pull.head_sha,
                title=pull.title,
                url=pull.html_url,
                kickoff=is_kickoff(row),
                labels=fact.labels,
                draft=pull.draft,
                ci=fact.ci,
                failing_checks=fact.failing,
                conflicts=pull.mergeable is False,
                review=fact.reviews.decision,
                uncounted_approvals=fact.reviews.uncounted_approvals,
                uncounted_changes=fact.reviews.uncounted_changes,
                priority=_priority(row.priority),
                held=row.held,
                unqueued=row.unqueued,
                bumped_at=row.bumped_at,
                let_ahead=row.let_ahead,
                dequeued=dequeued,
                eligible_since=row.eligible_since,
            )
            since = next_eligible_since(entry, push, now)
            entry = replace(entry, eligible_since=since)
            if since is None and row.bumped_at is not None and blocker(entry) is not None and push is Push.OTHER:
                entry = replace(entry, bumped_at=None)
            entries[number] = entry
            pending_head, pending_since = memory.pending_head, memory.pending_since
            if fact.ci == "pending":
                if pending_head != pull.head_sha or pending_since is None:
                    pending_head, pending_since = pull.head_sha, now
            else:
                pending_head, pending_since = None, None
            memories[number] = memory.evolve(
                seen_head=pull.head_sha,
                seen_review=fact.reviews.decision,
                pending_head=pending_head,
                pending_since=pending_since,
            )
            changes[number] = {
                "eligible_since": since,
                "dequeued": dequeued.value if dequeued is not None else None,
                "bumped_at": entry.bumped_at,
            }
        for row in closed:
            entries[row.number] = Entry(
                number=row.number, head_sha=row.head_sha or "", title=row.title, kickoff=is_kickoff(row), closed=True
            )
            memories[row.number] = memory_of(row)

        # Overlap holds need the files of the eligible entries; the head's update needs one comparison.
        eligible = [e for e in entries.values() if e.in_queue and blocker(e) is None]
        if queue.hold_overlaps and len(eligible) > 1:
            for entry in eligible:
                files = await self._changed_files(github, key, entry, outcome)
                entries[entry.number] = replace(entry, files=files)
        snapshot = Snapshot(key.repository, key.base, base_sha, tuple(entries[n] for n in sorted(entries)))
        result = _plan(snapshot, queue, now)
        if result.head is not None and entries[result.head].review == "approved":
            head = entries[result.head]
            contains = await self._contains_base(github, key, head.head_sha, base_sha, outcome)
            if contains:
                entries[head.number] = replace(head, contains_base=True)
                snapshot = replace(snapshot, entries=tuple(entries[n] for n in sorted(entries)))
                result = _plan(snapshot, queue, now)
        # Checks that never report: the head waits on CI no longer than the deadline.
        if result.head is not None and result.verdicts[result.head].state is State.WAITING_FOR_CI:
            since = memories[result.head].pending_since
            if since is not None and now - since >= self.checks_timeout:
                log.info("%s#%s: required checks pending since %s; dequeued", key.repository, result.head, since)
                entries[result.head] = replace(entries[result.head], dequeued=Reason.CHECKS_TIMED_OUT)
                changes[result.head]["dequeued"] = Reason.CHECKS_TIMED_OUT.value
                snapshot = replace(snapshot, entries=tuple(entries[n] for n in sorted(entries)))
                result = _plan(snapshot, queue, now)
        outcome.snapshot, outcome.plan = snapshot, result

        rows_by_number = {fact.row.number: fact.row for fact in facts.values()} | {row.number: row for row in closed}
        await self._save_state(rows_by_number, memories, changes, result)
        await self._write_checks(github, key, queue, rows_by_number, memories, result, outcome)
        await self._act(github, key, config, rows_by_number, memories, result, outcome)
        return outcome

    async def _reviews(
        self, github: GitHubAPI, key: QueueKey, number: int, reviewers: ReviewerPermissions, outcome: Outcome
    ) -> Reviews:
        """The pull request's review decision from reviewers who may approve (see `REVIEW_FLOOR`)."""
        reviews = await github.list_reviews(key.installation_id, key.owner, key.repo, number)
        held: dict[str, Permission] = {}
        before = reviewers.asked
        for login, review in latest_reviews(reviews).items():
            if review.state in COUNTED:
                held[login] = await reviewers.get(github, key, review.author)
        outcome.reads += reviewers.asked - before
        return review_of(reviews, held)

    @staticmethod
    def _may_be_eligible(row: PullRequest, pull: PullRequestInfo) -> bool:
        """Whether CI and reviews can matter: not a draft, held, taken out or dequeued for a reason that sticks."""
        sticky = as_reason(row.dequeued) in (Reason.MANUAL, Reason.UPDATE_FAILED)
        return not (pull.draft or row.held or row.unqueued or sticky)

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

    async def _save_state(
        self,
        rows: Mapping[int, PullRequest],
        memories: Mapping[int, Memory],
        changes: Mapping[int, Mapping[str, Any]],
        result: Plan,
    ) -> None:
        updates: dict[int, dict[str, Any]] = {}
        for number, row in rows.items():
            values = {name: value for name, value in changes.get(number, {}).items() if getattr(row, name) != value}
            verdict = result.verdicts.get(number)
            memory = memories[number]
            if verdict is not None:
                memory = memory.evolve(position=verdict.position)
            if memory != memory_of(row):
                values["queue_check"] = memory.dump()
            if values:
                updates[row.id] = values
        await self.store.update_many(updates)

    async def _write_checks(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        rows: Mapping[int, PullRequest],
        memories: dict[int, Memory],
        result: Plan,
        outcome: Outcome,
    ) -> None:
        """Write the checks whose desired state changed: the one that takes `success` away before the one that
        grants it; each stored once GitHub has it."""
        current = {number: memory.check for number, memory in memories.items() if memory.check is not None}
        for write in diff(current, result.checks):
            row, verdict = rows[write.number], result.verdicts[write.number]
            check, previous = write.check, current.get(write.number)
            reopen = previous is not None and previous.status == "completed" and check.status != "completed"
            actions = buttons_for(verdict.state)
            check_run_id = row.queue_check_run_id
            if write.create or reopen or check_run_id is None:
                check_run_id = await self._create(github, key, queue, check, actions)
            else:
                try:
                    await github.update_check_run(
                        key.installation_id, key.owner, key.repo, check_run_id, conclusion=check.conclusion,
                        title=check.title, summary=check.summary, actions=actions,
                    )
                except NotFound:
                    check_run_id = await self._create(github, key, queue, check, actions)
            outcome.writes.append(write)
            memory = memories[write.number].evolve(
                check=check, state=verdict.state.value, reason=verdict.reason.value if verdict.reason else None,
                position=verdict.position,
            )
            memories[write.number] = memory
            values: dict[str, Any] = {"queue_check_run_id": check_run_id}
            if verdict.reason is Reason.CLOSED:
                values["dequeued"] = Reason.CLOSED.value  # its last word: the queue forgets it from now on
            await self.store.save_memory(row.id, memory, **values)
            row.queue_check_run_id = check_run_id

    async def _create(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        check: DesiredCheck,
        actions: Sequence[CheckRunAction],
    ) -> int:
        return await github.create_check_run(
            key.installation_id, key.owner, key.repo, name=queue.check_name, head_sha=check.head_sha,
            conclusion=check.conclusion, title=check.title, summary=check.summary, actions=actions,
        )

    # ---- The merge lane -------------------------------------------------------------------------------------------

    async def _act(
        self,
        github: GitHubAPI,
        key: QueueKey,
        config: RepoConfig,
        rows: Mapping[int, PullRequest],
        memories: dict[int, Memory],
        result: Plan,
        outcome: Outcome,
    ) -> None:
        for action in result.actions:
            row = rows[action.number]
            if isinstance(action, UpdateBranch):
                memory = memories[action.number]
                if (memory.updated_from, memory.update_base) == (action.expected_head_sha, action.base_sha):
                    continue  # done once for this head and base: wait for its push
                done = await self.update(key, row, action.expected_head_sha, action.base_sha, config, memory)
                if done in (Updated.UPDATED, Updated.AGENT):
                    outcome.updated.append(action.number)
            elif isinstance(action, Merge):
                try:
                    await github.merge_pull(
                        key.installation_id, key.owner, key.repo, action.number, sha=action.expected_head_sha,
                        merge_method=action.method,
                    )
                except (ValidationFailed, GitHubError) as exc:
                    if exc.status not in (405, 409, 422):
                        raise
                    log.info("%s#%s could not be merged yet: %s", key.repository, action.number, exc)
                    continue
                now = self.services.clock()
                await self.store.update(row.id, state=MERGED, merged_at=now)
                outcome.merged.append(action.number)
                log.info("%s#%s merged by the queue (%s)", key.repository, action.number, action.method)

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
        """Bring one pull request up to date with its base: GitHub's update-branch (a merge; `queue.update_method:
        rebase` falls back to it, as GitHub's REST API only merges), or an agent rebase run when it conflicts and
        `update_method` is `agent` (or `agent_on_conflict`). Remembered per (head, base): never done twice."""
        github = self.services.require_github()
        memory = memory or memory_of(row)
        use_agent = config.queue.update_method == "agent" if agent_on_conflict is None else agent_on_conflict
        try:
            await github.update_branch(key.installation_id, key.owner, key.repo, row.number, head_sha)
        except ValidationFailed as exc:
            text = exc.message.lower()
            if "no new commits" in text:
                await self._remember_update(row, memory, head_sha, base_sha)
                return Updated.CURRENT
            if "expected_head_sha" in text or "head sha" in text:
                return Updated.MOVED  # it moved meanwhile: the next reconcile sees the new head
            if "conflict" in text:
                await self._remember_update(row, memory, head_sha, base_sha)
                if not use_agent:
                    return Updated.CONFLICT  # GitHub reports the conflict: the entry shows CONFLICT_WITH_BASE
                planned = await self._plan_agent_rebase(key, row, head_sha, base_sha, config)
                return Updated.AGENT if planned else Updated.NO_AGENT
            log.warning("%s#%s: update-branch refused: %s", key.repository, row.number, exc)
            await self._remember_update(row, memory, head_sha, base_sha, dequeued=Reason.UPDATE_FAILED)
            return Updated.FAILED
        except GitHubError as exc:
            if exc.status not in (403, 404, 409):
                raise
            log.warning("%s#%s: update-branch failed: %s", key.repository, row.number, exc)
            await self._remember_update(row, memory, head_sha, base_sha, dequeued=Reason.UPDATE_FAILED)
            return Updated.FAILED
        await self._remember_update(row, memory, head_sha, base_sha)
        log.info("%s#%s brought up to date with %s@%s", key.repository, row.number, key.base, base_sha[:7])
        return Updated.UPDATED

    async def _remember_update(
        self, row: PullRequest, memory: Memory, head_sha: str, base_sha: str, *, dequeued: Reason | None = None
    ) -> None:
        updated = memory.evolve(updated_from=head_sha, update_base=base_sha)
        values: dict[str, Any] = {}
        if dequeued is not None:
            values["dequeued"] = dequeued.value
        await self.store.save_memory(row.id, updated, **values)
        row.queue_check = updated.dump()

    async def _plan_agent_rebase(
        self, key: QueueKey, row: PullRequest, head_sha: str, base_sha: str, config: RepoConfig
    ) -> bool:
        """A follow-up `fix` run on the pull request that merges the base and resolves the conflicts (planned once
        per head and base: the trigger is keyed by them)."""
        task = config.task("fix")
        if task is None or not task.agents:
            log.warning("%s#%s conflicts, but there is no `fix` task to rebase it", key.repository, row.number)
            return False
        await plan_trigger(
            self.services,
            TriggerRequest(
                delivery_id=f"queue-rebase:{key.repository}#{row.number}:{head_sha[:12]}:{base_sha[:12]}"[:100],
                seq=0,
                installation_id=key.installation_id,
                repository=key.repository,
                issue_number=row.number,
                task="fix",
                agents=(task.agents[0],),
                attempts=1,
                sender="kickoff",
                source="fix",
                instructions=messages.QUEUE_REBASE_INSTRUCTIONS.format(base=key.base),
                is_pull_request=True,
                base_branch=key.base,
                reason=messages.QUEUE_REBASE_REASON.format(base=key.base),
            ),
        )
        return True


def _plan(snapshot: Snapshot, config: QueueConfig, now: datetime) -> Plan:
    """`plan`, with closed entries only for their own final check: the others' checks (and the queue table in
    them) are planned without them, so they do not change again once a closed entry is forgotten."""
    closed = [entry for entry in snapshot.entries if entry.closed]
    if not closed:
        return plan(snapshot, config, now)
    whole = plan(snapshot, config, now)
    result = plan(replace(snapshot, entries=tuple(e for e in snapshot.entries if not e.closed)), config, now)
    numbers = [entry.number for entry in closed]
    return replace(
        result,
        verdicts=MappingProxyType({**result.verdicts, **{n: whole.verdicts[n] for n in numbers}}),
        checks=MappingProxyType({**result.checks, **{n: whole.checks[n] for n in numbers}}),
    )


def _priority(value: str | None) -> Priority | None:
    for known in PRIORITIES:
        if value == known:
            return known
    return None


def _queued_label(labels: frozenset[str]) -> bool:
    return QUEUE_LABEL in {label.lower() for label in labels}


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


__all__ = [
    "Outcome",
    "QueueKey",
    "QueueService",
    "QueueSettings",
    "QueueSweeper",
    "ReviewerPermissions",
    "Reviews",
    "Updated",
    "build_sweeper",
    "ci_of",
    "classify_push",
    "latest_reviews",
    "review_of",
]
