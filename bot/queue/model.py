"""The review queue's pure model: a snapshot of one queue (repository + base branch) in, its order, each entry's
desired `review-queue` check and the merge lane's actions out. No I/O and no clock: `now` is a parameter.

Eligible (the agent's job, not the reviewer's): not draft, required CI green on the head, no conflict with the base,
not on hold, not unqueued or dequeued. An entry that keeps its place (see `next_eligible_since`) while CI re-runs
after an update or a review answer stays eligible: otherwise updating the head would hand the head to the next
entry, which would be updated in turn.

Order: `/agent bump` first (latest bump in front), then the priority band after aging, then the time the entry last
became eligible, then the number; `/agent skip` then moves an entry just behind the one it let go ahead.

Fan-outs (the pull requests one trigger's runs opened, `Entry.fanout`) take one review slot: the order holds the
slot of their leader (`leaders`), and right behind it, sharing its position, its eligible siblings best first as
alternatives. Only a slot can be the head or in the review window.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal

from bot import messages
from bot.config.model import Queue as QueueConfig
from bot.queue import texts
from bot.queue.texts import Conclusion, Reason, State, Status
from bot.slash_commands import PRIORITIES, Priority

if TYPE_CHECKING:
    from bot.github.models import Permission

QUEUE_LABEL: Final = "kickoff:queue"
"""Queues a pull request that Kickoff did not open."""
PRIORITY_LABEL_PREFIX: Final = "priority:"
DEFAULT_PRIORITY: Final[Priority] = "normal"
BAND: Final[Mapping[Priority, int]] = MappingProxyType({name: rank for rank, name in enumerate(PRIORITIES)})
"""Priority band → rank; 0 (urgent) is the top."""
REVIEW_FLOOR: Final[Permission] = "write"
"""The least live permission whose approval or change request counts: GitHub's own rule for a review decision.
Fixed, not `permissions.min_permission`: that one says who may start agents, and a repository lowering it (e.g. to
`read`, which everyone holds on a public repository) must not let strangers approve merges."""

CI = Literal["pending", "success", "failure"]
Review = Literal["pending", "approved", "changes_requested"]
UpdateMethod = Literal["merge", "rebase", "agent"]
MergeMethod = Literal["merge", "squash", "rebase"]


class Push(StrEnum):
    """What the latest push to a pull request was, as far as its place in the queue goes."""

    NONE = "none"  # no push since the last reconcile
    UPDATE = "update"  # only brought the head up to date with its base (update-branch, rebase, `/agent rebase`)
    REVIEW_ANSWER = "review_answer"  # answers a review (e.g. an `/agent fix` run on the pull request)
    OTHER = "other"  # new work: the entry starts over when it is eligible again


@dataclass(frozen=True, slots=True)
class Entry:
    """One pull request on the queue's base branch: GitHub's facts, the queue commands, and what the caller
    remembers (`eligible_since`, `dequeued`). Times are timezone-aware. Include a closed one only until its final
    `Dequeued: CLOSED` check is written; merged ones not at all."""

    number: int
    head_sha: str
    title: str = ""
    url: str = ""
    kickoff: bool = True  # opened by Kickoff; others are queued only with the `kickoff:queue` label
    labels: frozenset[str] = frozenset()
    closed: bool = False
    draft: bool = False
    ci: CI = "pending"  # the required checks on `head_sha`
    failing_checks: tuple[str, ...] = ()
    conflicts: bool = False  # GitHub says it conflicts with its base ("unknown" is not a conflict)
    review: Review = "pending"  # counting only reviewers with at least `REVIEW_FLOOR`
    uncounted_approvals: tuple[str, ...] = ()  # logins below the floor whose latest review approves
    uncounted_changes: tuple[str, ...] = ()  # … or requests changes
    files: frozenset[str] = frozenset()
    contains_base: bool = False  # the head contains the snapshot's `base_sha`
    priority: Priority | None = None  # `/agent priority`; overrides `priority:*` labels
    held: bool = False  # `/agent hold`
    unqueued: bool = False  # `/agent unqueue`
    bumped_at: datetime | None = None  # `/agent bump`
    let_ahead: int | None = None  # `/agent skip`: the pull request this one let go ahead (see `Plan.behind`)
    dequeued: Reason | None = None  # recorded by the merge lane (UPDATE_FAILED, CHECKS_TIMED_OUT, CI_FAILED)
    eligible_since: datetime | None = None  # see `next_eligible_since`; None: it has no place
    fanout: int | None = None  # the trigger whose runs opened it: siblings share it (see `leaders`)
    rank: int | None = None  # its place among its siblings, 1 the best; None: not ranked (yet)
    preferred_at: datetime | None = None  # `/agent prefer`: the latest preferred sibling leads

    @property
    def in_queue(self) -> bool:
        """Whether this pull request belongs in the queue at all."""
        return self.kickoff or QUEUE_LABEL in _lower(self.labels)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One queue: the entries of one repository and base branch, and the base's current commit."""

    repository: str
    base: str
    base_sha: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        numbers = [entry.number for entry in self.entries]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a snapshot holds each pull request once")


@dataclass(frozen=True, slots=True)
class DesiredCheck:
    """The `review-queue` check run an entry should show, on the commit it belongs to."""

    head_sha: str
    status: Status
    conclusion: Conclusion | None
    title: str
    summary: str


@dataclass(frozen=True, slots=True)
class CheckWrite:
    """Write `check` for pull request `number`: a new check run on its head (`create`), or an update of it."""

    number: int
    check: DesiredCheck
    create: bool


@dataclass(frozen=True, slots=True)
class UpdateBranch:
    """Bring the head up to date with `base_sha` (GitHub's update-branch, a rebase, or an agent run)."""

    number: int
    expected_head_sha: str
    base_sha: str
    method: UpdateMethod


@dataclass(frozen=True, slots=True)
class Merge:
    """Merge the head (`queue.merge: auto`); `expected_head_sha` guards against a push since the snapshot."""

    number: int
    method: MergeMethod
    expected_head_sha: str


Action = UpdateBranch | Merge


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where one entry stands and why; the check is rendered from this."""

    number: int
    state: State
    reason: Reason | None = None
    position: int | None = None  # 1-based place in the review order; None when not in it
    band: Priority | None = None  # after aging
    other: int | None = None  # the entry it overlaps (OVERLAP)
    files: tuple[str, ...] = ()  # the files it shares with `other`


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of one evaluation: the review order, where each entry stands, its check and the actions."""

    order: tuple[int, ...]
    head: int | None
    window: tuple[int, ...]
    verdicts: Mapping[int, Verdict]
    checks: Mapping[int, DesiredCheck]
    actions: tuple[Action, ...] = field(default=())
    alternatives: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """Each alternative (a fan-out's sibling that does not lead it) → its leader, whether it is in the order or not."""

    @property
    def slots(self) -> int:
        """The review slots in the order: a fan-out's leader and its alternatives take one."""
        return sum(1 for number in self.order if number not in self.alternatives)

    def behind(self, number: int) -> int | None:
        """The slot right behind `number`'s in the order: the one `/agent skip` on `number` lets go ahead. An
        alternative has no slot of its own to give up."""
        if number not in self.order or number in self.alternatives:
            return None
        index = self.order.index(number) + 1
        while index < len(self.order) and self.order[index] in self.alternatives:
            index += 1
        return self.order[index] if index < len(self.order) else None


def base_priority(entry: Entry) -> Priority:
    """`/agent priority` if set, else the most urgent `priority:*` label, else normal."""
    if entry.priority is not None:
        return entry.priority
    if not entry.labels:
        return DEFAULT_PRIORITY
    labels = _lower(entry.labels)
    return next((name for name in PRIORITIES if PRIORITY_LABEL_PREFIX + name in labels), DEFAULT_PRIORITY)


def band(entry: Entry, config: QueueConfig, now: datetime) -> Priority:
    """The priority band after aging: one band up per `aging_hours` since it became eligible; urgent is the top."""
    rank = BAND[base_priority(entry)]
    if config.aging_hours > 0 and entry.eligible_since is not None and now > entry.eligible_since:
        rank = max(0, rank - (now - entry.eligible_since) // timedelta(hours=config.aging_hours))
    return PRIORITIES[rank]


def blocker(entry: Entry) -> tuple[State, Reason | None] | None:
    """Why an open, queued entry is not eligible (the first that applies), or None if it is."""
    if entry.closed:
        return State.DEQUEUED, Reason.CLOSED
    if entry.unqueued:
        return State.DEQUEUED, Reason.MANUAL
    if entry.dequeued is not None:
        return State.DEQUEUED, entry.dequeued
    if entry.draft:
        return State.DRAFT, None
    if entry.held:
        return State.ON_HOLD, None
    placed = entry.eligible_since is not None
    if entry.conflicts:
        return (State.DEQUEUED, Reason.CONFLICT_WITH_BASE) if placed else (State.CONFLICTS, None)
    if entry.ci == "failure":
        return State.CI_FAILING, None
    if entry.ci == "pending" and not placed:
        return State.CI_PENDING, None
    return None


def keeps_place(state: State, reason: Reason | None) -> bool:
    """Whether an entry blocked this way keeps its `eligible_since` (from the coded table)."""
    if reason is not None:
        return texts.REASONS[reason].keeps_place
    return bool(texts.STATES[state].keeps_place)


def next_eligible_since(entry: Entry, push: Push, now: datetime) -> datetime | None:
    """The `eligible_since` to store for `entry` (with its new facts and its old `eligible_since`), given the latest
    push. An update or review-answer push keeps it; other pushes reset it. An ineligible period resets it unless its
    cause keeps the place (CI re-running, a conflict with the base, a hold, a failed update, timed-out checks)."""
    if not entry.in_queue or entry.closed:
        return None
    since = None if push is Push.OTHER else entry.eligible_since
    blocked = blocker(replace(entry, eligible_since=since))
    if blocked is None:
        return since if since is not None else now
    return since if keeps_place(*blocked) else None


def review_order(snapshot: Snapshot, config: QueueConfig, now: datetime) -> list[Entry]:
    """The eligible entries in review order (each fan-out's alternatives right behind its leader)."""
    return _ordered(snapshot, config, now)[0]


def sibling_key(entry: Entry) -> tuple[bool, bool, float, bool, int, int]:
    """Best sibling first: not rejected (changes requested), the latest `/agent prefer`, the rank, the number."""
    preferred = -entry.preferred_at.timestamp() if entry.preferred_at is not None else 0.0
    return (
        entry.review == "changes_requested",
        entry.preferred_at is None,
        preferred,
        entry.rank is None,
        entry.rank or 0,
        entry.number,
    )


def may_lead(entry: Entry) -> bool:
    """Whether a sibling can lead its fan-out or stand in as an alternative: open, queued, not taken out."""
    return entry.fanout is not None and entry.in_queue and not entry.closed and not entry.unqueued \
        and entry.dequeued is None


def leaders(entries: Sequence[Entry]) -> dict[int, list[Entry]]:
    """Each fan-out's siblings that may lead (`may_lead`), best first (`sibling_key`): the first leads, the others
    are its alternatives. A sibling with changes requested leads only when every one has them. One pass and a sort
    per fan-out."""
    groups: dict[int, list[Entry]] = {}
    for entry in entries:
        if entry.fanout is not None and may_lead(entry):
            groups.setdefault(entry.fanout, []).append(entry)
    for members in groups.values():
        members.sort(key=sibling_key)
    return groups


def _ordered(
    snapshot: Snapshot, config: QueueConfig, now: datetime
) -> tuple[list[Entry], dict[int, Priority], dict[int, int]]:
    """The review order, each ordered entry's band after aging (worked out once), and each alternative → its
    leader (`Plan.alternatives`)."""
    eligible = [entry for entry in snapshot.entries if entry.in_queue and blocker(entry) is None]
    bands = {entry.number: band(entry, config, now) for entry in eligible}
    groups = leaders(snapshot.entries)
    led = {members[0].number: members[1:] for members in groups.values() if len(members) > 1}
    following = {entry.number: leader for leader, rest in led.items() for entry in rest}

    def key(entry: Entry) -> tuple[int, float, int, float, int]:
        bumped = -entry.bumped_at.timestamp() if entry.bumped_at is not None else 0.0
        since = (entry.eligible_since or now).timestamp()
        return (0 if entry.bumped_at is not None else 1, bumped, BAND[bands[entry.number]], since, entry.number)

    result = sorted((entry for entry in eligible if entry.number not in following), key=key)
    for skipper in [entry for entry in result if entry.let_ahead is not None]:
        numbers = [entry.number for entry in result]
        if skipper.let_ahead in numbers and numbers.index(skipper.let_ahead) > numbers.index(skipper.number):
            result.remove(skipper)
            result.insert(numbers.index(skipper.let_ahead), skipper)
    if not led:
        return result, bands, following
    together: list[Entry] = []
    for entry in result:
        together.append(entry)
        together.extend(other for other in led.get(entry.number, ()) if other.number in bands)
    return together, bands, following


def plan(snapshot: Snapshot, config: QueueConfig, now: datetime, *, link: str | None = None) -> Plan:
    """Evaluate one queue: its order, head, review window, each entry's verdict and check, and the actions. `link`:
    where a person sees the whole queue (the dashboard), named in every queued entry's check."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    if not config.enabled:
        off = {entry.number: Verdict(entry.number, State.QUEUE_OFF) for entry in snapshot.entries}
        return _render(snapshot, config, verdicts=off, link=link)

    ordered, bands, alternatives = _ordered(snapshot, config, now)
    slots = [entry for entry in ordered if entry.number not in alternatives]
    overlaps = _overlaps(slots) if config.hold_overlaps else {}
    window = tuple(entry.number for entry in slots if entry.number not in overlaps)[: config.review_window]
    head = slots[0] if slots else None
    entries = _by_number(snapshot)
    in_window = frozenset(window)
    first_to_review = next((number for number in window if entries[number].review == "pending"), None)
    verdicts: dict[int, Verdict] = {}
    actions: list[Action] = []
    position = 0
    for entry in ordered:
        entry_band = bands[entry.number]
        if entry.number in alternatives:  # right behind its leader, in the leader's slot
            leader = alternatives[entry.number]
            verdicts[entry.number] = Verdict(entry.number, State.ALTERNATIVE, None, position, entry_band, leader)
            continue
        position += 1
        if entry is head:
            state = _head_state(entry)
            if state is State.UPDATING:
                actions.append(UpdateBranch(entry.number, entry.head_sha, snapshot.base_sha, config.update_method))
            elif state is State.MERGE_READY and config.merge == "auto":
                actions.append(Merge(entry.number, config.merge_method, entry.head_sha))
        elif entry.number in overlaps:
            other, files = overlaps[entry.number]
            verdicts[entry.number] = Verdict(entry.number, State.OVERLAP, None, position, entry_band, other, files)
            continue
        elif entry.review == "approved":
            state = State.APPROVED_WAITING
        elif entry.review == "changes_requested":
            state = State.CHANGES_REQUESTED
        elif entry.number in in_window:
            state = State.NEXT_FOR_REVIEW
        else:
            state = State.QUEUED
        verdicts[entry.number] = Verdict(entry.number, state, None, position, entry_band)
    for entry in snapshot.entries:
        if entry.number in verdicts:
            continue
        blocked = blocker(entry) if entry.in_queue else (State.NOT_IN_QUEUE, None)
        if blocked is None:  # eligible, not in the order: an alternative whose leader is not ready
            verdicts[entry.number] = Verdict(entry.number, State.ALTERNATIVE, other=alternatives[entry.number])
            continue
        verdicts[entry.number] = Verdict(entry.number, *blocked)
    return _render(
        snapshot,
        config,
        order=tuple(entry.number for entry in ordered),
        head=head.number if head is not None else None,
        window=window,
        verdicts=verdicts,
        actions=tuple(actions),
        first_to_review=first_to_review,
        link=link,
        alternatives=alternatives,
    )


def desired_checks(snapshot: Snapshot, config: QueueConfig, now: datetime) -> dict[int, DesiredCheck]:
    """Each entry's desired `review-queue` check, by pull request number."""
    return dict(plan(snapshot, config, now).checks)


def diff(current: Mapping[int, DesiredCheck], desired: Mapping[int, DesiredCheck]) -> list[CheckWrite]:
    """The writes that make `current` look like `desired`; none when nothing changed. Writes that take a `success`
    away come first and the one that grants it last, so GitHub never shows two at once."""
    writes = [
        CheckWrite(number, want, create=number not in current or current[number].head_sha != want.head_sha)
        for number, want in desired.items()
        if current.get(number) != want
    ]
    return sorted(writes, key=lambda write: (write.check.conclusion == "success", write.number))


def _head_state(head: Entry) -> State:
    """The merge lane: only an approved head is brought up to date, re-checked, and then marked mergeable."""
    if head.review == "changes_requested":
        return State.CHANGES_REQUESTED
    if head.review != "approved":
        return State.NEXT_FOR_REVIEW
    if not head.contains_base:
        return State.UPDATING
    if head.ci != "success":
        return State.WAITING_FOR_CI
    return State.MERGE_READY


def _overlaps(ordered: Sequence[Entry]) -> dict[int, tuple[int, tuple[str, ...]]]:
    """Entry → the first entry ahead of it that changes a file it changes, and the shared files. Through an index from
    each file to the first entry (in order) that changes it: linear in the number of files, not pairwise."""
    first: dict[str, int] = {}  # file → the index in `ordered` of the first entry changing it
    found: dict[int, tuple[int, tuple[str, ...]]] = {}
    for index, entry in enumerate(ordered):
        ahead = min((first[name] for name in entry.files if name in first), default=None)
        if ahead is not None:
            other = ordered[ahead]
            found[entry.number] = (other.number, tuple(sorted(entry.files & other.files)))
        for name in entry.files:
            first.setdefault(name, index)
    return found


def _render(
    snapshot: Snapshot,
    config: QueueConfig,
    *,
    verdicts: Mapping[int, Verdict],
    order: tuple[int, ...] = (),
    head: int | None = None,
    window: tuple[int, ...] = (),
    actions: tuple[Action, ...] = (),
    first_to_review: int | None = None,
    link: str | None = None,
    alternatives: Mapping[int, int] | None = None,
) -> Plan:
    entries = _by_number(snapshot)
    base = texts.plain(snapshot.base, 100)
    sha = texts.plain(snapshot.base_sha[:7], 7)
    first = first_to_review or head or 0
    front_rows = []
    for number in order:
        if _far(verdicts[number]):  # the first `NEAR` slots (a fan-out's alternatives share its leader's)
            break
        entry = entries[number]
        front_rows.append(texts.TableRow(number, entry.url, entry.title, verdicts[number].position, ""))
    front = texts.table(snapshot.repository, snapshot.base, front_rows, states=False) if front_rows else None
    checks: dict[int, DesiredCheck] = {}
    for number, verdict in verdicts.items():
        near = not _far(verdict)
        checks[number] = _check(
            entries[number],
            verdict,
            base,
            sha if verdict.state is State.MERGE_READY else "",
            first if near else 0,
            (head or 0) if near else 0,
            front if near else None,
            link,
            config.merge,
            config.merge_method,
        )
    return Plan(
        order=order,
        head=head,
        window=window,
        verdicts=MappingProxyType(dict(verdicts)),
        checks=MappingProxyType(checks),
        actions=actions,
        alternatives=MappingProxyType(dict(alternatives or {})),
    )


def _far(verdict: Verdict) -> bool:
    """Beyond the first `texts.NEAR` places (or with no place): its check shows no position and no front."""
    return verdict.position is None or verdict.position > texts.NEAR


def _fields(entry: Entry, verdict: Verdict, base: str, sha: str, first: int, head: int) -> dict[str, object]:
    return {
        "base": base,
        "sha": sha,
        "place": texts.ordinal(verdict.position) if verdict.position else "",
        "first": first,
        "head": head,
        "other": verdict.other or 0,
        "files": texts.listing(verdict.files, shown=1, each=100),
        "checks": texts.listing(entry.failing_checks) or "required checks",
        "reason": verdict.reason.value if verdict.reason is not None else "",
    }


@functools.lru_cache(maxsize=16_384)
def _check(
    entry: Entry,
    verdict: Verdict,
    base: str,
    sha: str,
    first: int,
    head: int,
    front: texts.Table | None,
    link: str | None,
    merge: str,
    merge_method: MergeMethod,
) -> DesiredCheck:
    """One entry's check, from what it depends on alone: its own facts and verdict, and (only near the front) the
    front of the queue. Remembered, so an unchanged entry costs a lookup on the next reconcile."""
    far = _far(verdict)
    fields = _fields(entry, verdict, base, sha, first, head)
    row = texts.STATES[verdict.state]
    intro = texts.meaning(verdict.state, verdict.reason, fields, placed=entry.eligible_since is not None, far=far)
    details = _details(entry, verdict, merge, merge_method)
    outside = verdict.state in (State.NOT_IN_QUEUE, State.QUEUE_OFF)
    summary = texts.summary(
        number=entry.number, intro=intro, details=details, front=front, link=link, queued=not outside
    )
    title = texts.title(verdict.state, fields, far=far)
    return DesiredCheck(entry.head_sha, row.status, row.conclusion, title, summary)


def _details(entry: Entry, verdict: Verdict, merge: str, merge_method: MergeMethod) -> list[str]:
    details: list[str] = []
    if verdict.band is not None:
        priority = base_priority(entry)
        aged = f" (from {priority}, after waiting)" if verdict.band != priority else ""
        details.append(f"**Priority:** {verdict.band}{aged}")
    if entry.eligible_since is not None and verdict.position is not None:
        details.append(f"**Ready since:** {texts.since_text(entry.eligible_since)}")
    if entry.bumped_at is not None and verdict.position is not None:
        details.append("**Bumped** to the front")
    if verdict.state is State.CI_FAILING and entry.failing_checks:
        names = ", ".join(texts.code(name, 60) for name in entry.failing_checks[:10])
        more = len(entry.failing_checks) - 10
        details.append(f"**Failing:** {names}" + (f" and {more} more" if more > 0 else ""))
    if verdict.state is State.OVERLAP and verdict.files:
        names = ", ".join(texts.code(name, 100) for name in verdict.files[:10])
        more = len(verdict.files) - 10
        details.append(f"**Shared files:** {names}" + (f" and {more} more" if more > 0 else ""))
    if verdict.state is State.MERGE_READY and merge == "auto":
        details.append(f"Kickoff merges it now ({merge_method}).")
    if entry.uncounted_approvals or entry.uncounted_changes:
        details.append(messages.queue_reviews_not_counted(
            [texts.cell("@" + login, 60) for login in entry.uncounted_approvals],
            [texts.cell("@" + login, 60) for login in entry.uncounted_changes],
            floor=REVIEW_FLOOR,
        ))
    return details


def _by_number(snapshot: Snapshot) -> dict[int, Entry]:
    return {entry.number: entry for entry in snapshot.entries}


def _lower(labels: frozenset[str]) -> frozenset[str]:
    return frozenset(label.lower() for label in labels)
