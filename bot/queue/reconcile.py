"""One reconcile's decisions, without I/O: CI and review verdicts from GitHub's facts, each entry with what the
queue remembers, and the plan (`bot.queue.model.plan`) over them.

`bot.queue.service` reads the facts and hands them here; `bot.queue.effects` writes what the plan asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from bot import messages
from bot.config.model import Queue as QueueConfig
from bot.github import CheckRunAction, PullRequestInfo
from bot.github.models import CommitStatus, Permission, PullReview, permission_at_least
from bot.queue.model import (
    CI,
    QUEUE_LABEL,
    REVIEW_FLOOR,
    CheckWrite,
    Entry,
    Plan,
    Push,
    Review,
    Snapshot,
    blocker,
    next_eligible_since,
    plan,
)
from bot.queue.store import Memory, QueueKey, as_reason, is_kickoff
from bot.queue.texts import Reason, State
from bot.slash_commands import PRIORITIES, Priority
from bot.store.models import PullRequest

log = logging.getLogger(__name__)

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
    drift: int = 0  # stored facts a read from GitHub found wrong (and repaired)
    elsewhere: set[QueueKey] = field(default_factory=set)  # queues entries moved to (a changed base branch)


@dataclass(frozen=True, slots=True)
class Reviews:
    """The review decision that counts, and who approved or requested changes without counting (logins)."""

    decision: Review = "pending"
    uncounted_approvals: tuple[str, ...] = ()
    uncounted_changes: tuple[str, ...] = ()


@dataclass
class Facts:
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


def may_be_eligible(row: PullRequest, pull: PullRequestInfo) -> bool:
    """Whether CI and reviews can matter: not a draft, held, taken out or dequeued for a reason that sticks."""
    sticky = as_reason(row.dequeued) in (Reason.MANUAL, Reason.UPDATE_FAILED)
    return not (pull.draft or row.held or row.unqueued or sticky)


def wants_checks(fact: Facts) -> bool:
    """Whether the entry's CI and reviews are worth reading: it may be eligible and it is in the queue (Kickoff's
    own pull requests always are; others by the queue label)."""
    return may_be_eligible(fact.row, fact.pull) and (is_kickoff(fact.row) or queued_label(fact.labels))


def judge_ci(
    facts: Mapping[int, Facts], memories: dict[int, Memory], *, ignore: set[str], own_app_id: int | None
) -> None:
    """Each checked entry's CI verdict (in `facts`). Checks are expected where CI ran on the pull request before
    or runs on another entry; an entry on which CI reported is remembered as having had checks (in `memories`)."""
    reporting = {
        number
        for number, fact in facts.items()
        if fact.checked and has_checks(fact.runs, fact.statuses, ignore=ignore, own_app_id=own_app_id)
    }
    for number, fact in facts.items():
        if not fact.checked:
            continue
        expect = bool(reporting - {number}) or memories[number].had_checks
        fact.ci, fact.failing = ci_of(fact.runs, fact.statuses, ignore=ignore, own_app_id=own_app_id,
                                      expect_checks=expect)
        if number in reporting:
            memories[number] = memories[number].evolve(had_checks=True)


def entry_of(fact: Facts, memory: Memory, now: datetime) -> tuple[Entry, Memory, dict[str, Any]]:
    """An open pull request's entry with what the queue remembers: a push clears the dequeue reasons it answers,
    and `eligible_since` moves on by the model's rule. Also the memory to keep and the row's values to store."""
    row, pull = fact.row, fact.pull
    push = classify_push(memory, pull.head_sha)
    dequeued = as_reason(row.dequeued)
    if dequeued is Reason.CLOSED:
        dequeued = None  # reopened
    if push is Push.OTHER or (push is Push.UPDATE and dequeued not in KEPT_ON_UPDATE):
        dequeued = None
    if dequeued is Reason.CHECKS_TIMED_OUT and fact.ci != "pending":
        dequeued = None  # the checks reported after all (a re-run)
    entry = Entry(
        number=row.number,
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
        fanout=row.trigger_id if row.run_id is not None else None,
        rank=row.rank,
        preferred_at=row.preferred_at,
    )
    since = next_eligible_since(entry, push, now)
    entry = replace(entry, eligible_since=since)
    if since is None and row.bumped_at is not None and blocker(entry) is not None and push is Push.OTHER:
        entry = replace(entry, bumped_at=None)
    pending_head, pending_since = memory.pending_head, memory.pending_since
    if fact.ci == "pending":
        if pending_head != pull.head_sha or pending_since is None:
            pending_head, pending_since = pull.head_sha, now
    else:
        pending_head, pending_since = None, None
    memory = memory.evolve(
        seen_head=pull.head_sha,
        seen_review=fact.reviews.decision,
        pending_head=pending_head,
        pending_since=pending_since,
    )
    changes = {
        "eligible_since": since,
        "dequeued": dequeued.value if dequeued is not None else None,
        "bumped_at": entry.bumped_at,
    }
    return entry, memory, changes


def closed_entry(row: PullRequest) -> Entry:
    """A closed pull request's entry: there only for its own final check."""
    return Entry(number=row.number, head_sha=row.head_sha or "", title=row.title, kickoff=is_kickoff(row), closed=True)


def plan_queue(snapshot: Snapshot, config: QueueConfig, now: datetime, *, link: str | None = None) -> Plan:
    """`plan` of one queue, closed entries included for their own final check: a closed entry has no place, and no
    other entry's check depends on it (nor on anything but its own facts, near the front the few ahead of it, and for
    a fan-out's alternative the number of its leader)."""
    return plan(snapshot, config, now, link=link)


def _priority(value: str | None) -> Priority | None:
    for known in PRIORITIES:
        if value == known:
            return known
    return None


def queued_label(labels: frozenset[str]) -> bool:
    return QUEUE_LABEL in {label.lower() for label in labels}


def timed_out_head(result: Plan, memories: Mapping[int, Memory], now: datetime, timeout: timedelta) -> int | None:
    """The head, when it has waited on CI for `timeout` or longer: checks that never report do not hold the queue."""
    if result.head is None or result.verdicts[result.head].state is not State.WAITING_FOR_CI:
        return None
    since = memories[result.head].pending_since
    if since is None or now - since < timeout:
        return None
    return result.head


def snapshot_of(key: QueueKey, base_sha: str, entries: Mapping[int, Entry]) -> Snapshot:
    return Snapshot(key.repository, key.base, base_sha, tuple(entries[n] for n in sorted(entries)))
