"""Every state and dequeue reason of the `review-queue` check, with its status, conclusion and words: one coded table.

Waiting states are `in_progress` (never `neutral`): GitHub counts `success`, `neutral` and `skipped` as passing for a
required check, so anything but the head must stay pending or blocking, or it could be merged past the queue.
`action_required` means a person or agent must act (buttons show only on completed runs); `failure` means the queue
took the pull request out. Titles are plain text and clipped to GitHub's 255 characters; summaries are Markdown,
every untrusted piece escaped and bounded, and clipped to 65,535 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

TITLE_LIMIT: Final = 255
SUMMARY_LIMIT: Final = 65_535
NEAR: Final = 3
"""Only the first few entries of the review order show their place (and the front of the queue) on their check: a
check depends on its own pull request and, near the front, on the few ahead of it. A merge at the head of a queue of
1,000 then rewrites a handful of checks, not 1,000; the whole order is on the dashboard and in `/agent queue`."""

Status = Literal["queued", "in_progress", "completed"]
Conclusion = Literal["success", "neutral", "action_required", "failure"]


class State(StrEnum):
    """Where an entry stands; the value is stable (logs, the dashboard's JSON), the words are in `STATES`."""

    MERGE_READY = "merge_ready"
    UPDATING = "updating"
    WAITING_FOR_CI = "waiting_for_ci"
    NEXT_FOR_REVIEW = "next_for_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED_WAITING = "approved_waiting"
    QUEUED = "queued"
    OVERLAP = "overlap"
    ALTERNATIVE = "alternative"
    ON_HOLD = "on_hold"
    DRAFT = "draft"
    CI_FAILING = "ci_failing"
    CI_PENDING = "ci_pending"
    CONFLICTS = "conflicts"
    DEQUEUED = "dequeued"
    NOT_IN_QUEUE = "not_in_queue"
    QUEUE_OFF = "queue_off"


class Reason(StrEnum):
    """Why the queue took a pull request out: a small fixed set, shown as is in the title."""

    CI_FAILED = "CI_FAILED"
    CONFLICT_WITH_BASE = "CONFLICT_WITH_BASE"
    CLOSED = "CLOSED"
    MANUAL = "MANUAL"
    UPDATE_FAILED = "UPDATE_FAILED"
    CHECKS_TIMED_OUT = "CHECKS_TIMED_OUT"


@dataclass(frozen=True, slots=True)
class Row:
    """One state: how the check looks. `title` and `meaning` are `str.format` templates over the fields named in
    `FIELDS`; `far_title` and `far_meaning`, where given, replace them beyond the first `NEAR` places, so those
    checks do not change whenever the front moves. `keeps_place` (blocked states only): whether the entry keeps its
    queue place while blocked."""

    status: Status
    conclusion: Conclusion | None
    title: str
    meaning: str
    keeps_place: bool | None = None
    far_title: str | None = None
    far_meaning: str | None = None


@dataclass(frozen=True, slots=True)
class ReasonRow:
    keeps_place: bool
    meaning: str


FIELDS: Final = frozenset({"base", "sha", "place", "first", "head", "other", "files", "checks", "reason"})

_PENDING: Final[Status] = "in_progress"

STATES: Final[Mapping[State, Row]] = MappingProxyType(
    {
        State.MERGE_READY: Row(
            "completed",
            "success",
            "Up next to merge: tested on {base}@{sha}",
            "This pull request is the head of the queue: approved, up to date with {base} and green on its "
            "current head. It is the only one in the queue that may merge now.",
        ),
        State.UPDATING: Row(
            _PENDING,
            None,
            "Approved: updating with {base}",
            "Approved and at the head of the queue. Kickoff is bringing it up to date with {base}; CI then runs "
            "on the updated head before it may merge.",
        ),
        State.WAITING_FOR_CI: Row(
            _PENDING,
            None,
            "Approved: waiting for CI on the updated head",
            "Approved, at the head of the queue and up to date with {base}. It may merge once the required checks "
            "pass on this head.",
        ),
        State.NEXT_FOR_REVIEW: Row(
            _PENDING,
            None,
            "Next for review",
            "Ready and in the review window: review it now.",
        ),
        State.CHANGES_REQUESTED: Row(
            _PENDING,
            None,
            "Changes requested: waiting for a new push",
            "A reviewer asked for changes. It keeps its place while the changes are made (`/agent fix …` here "
            "asks an agent); a push that answers the review does not send it to the back.",
        ),
        State.APPROVED_WAITING: Row(
            _PENDING,
            None,
            "Approved: {place} in line — #{head} merges first",
            "Approved. Only the head of the queue may merge; this one is updated with {base} and re-checked "
            "when its turn comes.",
            far_title="Approved: waiting for its turn to merge",
        ),
        State.QUEUED: Row(
            _PENDING,
            None,
            "Queued for review: {place} in line — review #{first} first",
            "Ready and waiting for its turn: review #{first} first. `/agent bump` moves it to the front.",
            far_title="Queued for review: waiting for its turn",
            far_meaning="Ready and waiting for its turn. `/agent bump` moves it to the front.",
        ),
        State.OVERLAP: Row(
            _PENDING,
            None,
            "Waiting: overlaps with #{other} ({files})",
            "It changes files that #{other}, ahead of it, also changes ({files}). It waits until #{other} merges "
            "or leaves the queue, so it is reviewed against the result.",
        ),
        State.ALTERNATIVE: Row(
            _PENDING,
            None,
            "Alternative to #{other} — review only if #{other} is rejected",
            "Another attempt at the same request as #{other}, which leads their fan-out (ranked above this one, or "
            "chosen with `/agent prefer`). The fan-out takes one review slot: review #{other}; this one takes its "
            "place if #{other} is closed without merging or gets changes requested, and closes as superseded when "
            "a sibling merges. `/agent prefer` here makes this one the leader.",
        ),
        State.ON_HOLD: Row(
            "completed",
            "action_required",
            "On hold",
            "Held with `/agent hold`: it is never made the head. `/agent unhold` releases it.",
            keeps_place=True,
        ),
        State.DRAFT: Row(
            "completed",
            "action_required",
            "Not queued: draft",
            "Drafts are not queued. Mark it ready for review to queue it.",
            keeps_place=False,
        ),
        State.CI_FAILING: Row(
            "completed",
            "action_required",
            "Not queued: CI failing ({checks})",
            "Required checks fail on the head ({checks}). Push a fix (or `/agent fix`); it queues once they pass.",
            keeps_place=False,
        ),
        State.CI_PENDING: Row(
            _PENDING,
            None,
            "Not queued: waiting for CI",
            "It queues once the required checks pass on its head.",
            keeps_place=True,
        ),
        State.CONFLICTS: Row(
            "completed",
            "action_required",
            "Not queued: conflicts with {base}",
            "It conflicts with {base}. Resolve the conflict (`/agent rebase`) to queue it.",
            keeps_place=True,
        ),
        State.DEQUEUED: Row(
            "completed",
            "failure",
            "Dequeued: {reason}",
            "Taken out of the queue ({reason}).",
        ),
        State.NOT_IN_QUEUE: Row(
            "completed",
            "neutral",
            "Not in the review queue",
            "Only Kickoff's pull requests are queued; label this one `kickoff:queue` to queue it.",
        ),
        State.QUEUE_OFF: Row(
            "completed",
            "neutral",
            "Review queue is off",
            "The review queue is off for this repository (`queue.enabled: false`); merge as usual.",
        ),
    }
)

REASONS: Final[Mapping[Reason, ReasonRow]] = MappingProxyType(
    {
        Reason.CI_FAILED: ReasonRow(
            False,
            "Required checks failed while it was in the merge lane. Push a fix; it queues again from then on.",
        ),
        Reason.CONFLICT_WITH_BASE: ReasonRow(
            True,
            "The base branch {base} moved and the pull request now conflicts with it. Resolve the conflict "
            "(`/agent rebase`) to queue it again.",
        ),
        Reason.CLOSED: ReasonRow(False, "The pull request was closed. Reopened, it queues again from then on."),
        Reason.MANUAL: ReasonRow(False, "Taken out with `/agent unqueue`. `/agent requeue` puts it back."),
        Reason.UPDATE_FAILED: ReasonRow(
            True,
            "Kickoff could not bring it up to date with {base}. `/agent rebase` or `/agent requeue` to try again.",
        ),
        Reason.CHECKS_TIMED_OUT: ReasonRow(
            True,
            "The required checks did not report in time. Re-run them, or `/agent requeue`.",
        ),
    }
)

KEEPS_PLACE: Final = "It keeps its place in the queue."
LOSES_PLACE: Final = "It loses its place: when it is ready again it queues from that time."

# Untrusted text (titles, check names, paths) must not break the table or smuggle markup, links or mentions.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]+")
_MARKDOWN: Final = re.compile(r"([\\`*_\[\]<>|~&@])")
_URL: Final = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]{1,300}")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int) -> str:
    """One line of untrusted text: control and invisible characters folded to spaces, clipped."""
    cut = 4 * limit + 64  # enough to fill `limit` after folding; bounds the work on huge input
    folded = " ".join(_CONTROL.sub(" ", text[:cut]).split())
    return clip(folded + "…" if len(text) > cut else folded, limit)


def escape(text: str) -> str:
    """Markdown metacharacters escaped, so untrusted text shows as written (no links, markup, HTML or mentions)."""
    return _MARKDOWN.sub(r"\\\1", text)


def cell(text: str, limit: int) -> str:
    """Untrusted text for a Markdown table cell: one line, clipped, escaped."""
    return escape(plain(text, limit))


def listing(items: Sequence[str], *, shown: int = 3, each: int = 60) -> str:
    """`a, b, c and 2 more` over untrusted names."""
    head = [plain(item, each) for item in items[:shown]]
    rest = len(items) - len(head)
    return ", ".join(head) + (f" and {rest} more" if rest > 0 else "")


def title(state: State, fields: Mapping[str, object], *, far: bool = False) -> str:
    row = STATES[state]
    template = row.far_title if far and row.far_title is not None else row.title
    return plain(template.format_map(fields), TITLE_LIMIT)


def meaning(
    state: State, reason: Reason | None, fields: Mapping[str, object], *, placed: bool, far: bool = False
) -> str:
    """The first paragraph of a summary: what the state means, what to do, and (for an entry that had a place, or
    a dequeue) whether the place is kept. Text fields are Markdown-escaped here."""
    safe = {name: escape(value) if isinstance(value, str) else value for name, value in fields.items()}
    row = STATES[state]
    template = row.far_meaning if far and row.far_meaning is not None else row.meaning
    text = template.format_map(safe)
    keeps = row.keeps_place if placed else None
    if reason is not None:
        text += " " + REASONS[reason].meaning.format_map(safe)
        keeps = REASONS[reason].keeps_place
    if keeps is not None:
        text += " " + (KEEPS_PLACE if keeps else LOSES_PLACE)
    return text


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st…"""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass(frozen=True, slots=True)
class TableRow:
    number: int
    url: str
    title: str
    position: int | None
    state: str


@dataclass(frozen=True, slots=True)
class Table:
    """Queue rows as Markdown table lines, rendered once and shared by every summary that shows them."""

    heading: str
    numbers: tuple[int, ...]
    lines: tuple[str, ...]
    own_lines: tuple[str, ...]
    head: tuple[str, ...] = ()


TABLE_HEAD: Final = ("| Position | Pull request | Title | State |", "| ---: | --- | --- | --- |")
CHECK_TABLE_HEAD: Final = ("| Position | Pull request | Title |", "| ---: | --- | --- |")


def table(repository: str, base: str, rows: Sequence[TableRow], *, states: bool = True) -> Table:
    """The rows as a table; without `states` (the front of the queue on a check) no row shows its state: a
    check then changes when the front's order does, not whenever an entry ahead of it moves on (issue 19: one
    entry's news must not rewrite its neighbours' checks), and each entry's state is on its own check."""
    heading = f"#### Front of the review queue of {cell(repository, 140)} → {cell(base, 100)}"
    return Table(
        heading,
        tuple(row.number for row in rows),
        tuple(_table_row(row, own=False, state=states) for row in rows),
        tuple(_table_row(row, own=True, state=states) for row in rows),
        TABLE_HEAD if states else CHECK_TABLE_HEAD,
    )


def summary(
    *, number: int, intro: str, details: Sequence[str], front: Table | None, link: str | None, queued: bool = True
) -> str:
    """The check's Markdown: what this state means, the front of the queue up to this entry (for an entry among
    the first `NEAR`), and (`queued`) where the whole order is. Nothing in it depends on how long the queue is or
    on entries behind it."""
    lines = [intro]
    if details:
        lines += ["", " · ".join(details)]
    if front is not None and number in front.numbers and front.numbers.index(number) > 0:
        # Only the entries ahead of this one, and this one: a pull request joining (or moving) behind it does not
        # change its check. The head has nothing ahead of it, so no table.
        mine = front.numbers.index(number)  # at most NEAR rows
        shown = [*front.lines[:mine], front.own_lines[mine]]
        lines += ["", front.heading, "", *(front.head or TABLE_HEAD), *shown]
    if queued:
        where = "The whole review order: `/agent queue` on this pull request"
        if link is not None and _URL.fullmatch(link):
            where += f", or the [dashboard]({link})"
        lines += ["", where + "."]
    return clip("\n".join(lines), SUMMARY_LIMIT)


def _table_row(row: TableRow, *, own: bool, state: bool = True) -> str:
    position = "—" if row.position is None else str(row.position)
    link = f"[#{row.number}]({row.url})" if _URL.fullmatch(row.url) else f"#{row.number}"
    if own:
        position, link = f"**{position}**", f"**{link}** (this one)"
    if not state:
        return f"| {position} | {link} | {cell(row.title, 100)} |"
    return f"| {position} | {link} | {cell(row.title, 100)} | {cell(row.state, 120)} |"


def code(text: str, limit: int) -> str:
    """Untrusted text as an inline code span (where backslash escapes do not work)."""
    return "`" + plain(text, limit).replace("`", "'") + "`"


def since_text(moment: datetime) -> str:
    """A stable, absolute time (no "3 hours ago": the summary must not change just because time passes)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
