"""What an agent may read of an issue: frozen when the trigger is accepted, and only from people who may start runs.

An attacker can add a comment after the `agent:*` label (and delete it after the run), or edit the issue they
wrote, between the trigger and the run's start. So when a trigger is accepted Kickoff stores a snapshot with it: the
issue's title and body (from the webhook payload when it carries them) and the comments made up to the trigger's
event, cleaned (`bot.untrusted`) and bounded, with a sha256 of the stored text. The prompt is built from it:

- the issue's title and body: as frozen, marked as written by someone who cannot start runs when that is so (the
  issue is what a maintainer chose to act on). When its author may start runs, the live text is used: only its
  author or a writer can edit an issue, so an edit is a trusted one.
- comments: only those by people who may start runs here (live permission, `permissions.min_permission` or
  `allow_users`; looked up once per person per prompt), with their live text; the rest are left out and counted.
  Comments by non-writers are the classic injection path (Copilot hides them from its agent too). Bots are left out.

A trigger without a snapshot (planned before snapshots existed, or by the review queue) reads the issue live, marked
when its author cannot start runs, and the comments under the same rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.gate import required_permission
from bot.github import GitHubAPI, GitHubError, Issue, IssueComment, Permission
from bot.github.models import permission_at_least
from bot.untrusted import MAX_UNTRUSTED_CHARS, clean_untrusted

log = logging.getLogger(__name__)

SNAPSHOT_VERSION: Final = 1
TITLE_CHARS: Final = 1000
MAX_SNAPSHOT_COMMENTS: Final = 100
SNAPSHOT_COMMENT_CHARS: Final = 4 * MAX_UNTRUSTED_CHARS
"""All stored comments together (each is cleaned and bounded by `MAX_UNTRUSTED_CHARS` first); oldest go first."""
MAX_COMMENTS_IN_PROMPT: Final = 30
MAX_PERMISSION_LOOKUPS: Final = 60
"""Distinct people whose permission one prompt may look up; past it their text is left out (rate limits)."""


class SnapshotError(Exception):
    """A stored snapshot that does not match its hash or cannot be read."""


@dataclass(frozen=True)
class FrozenComment:
    id: int
    author: str
    author_type: str
    body: str
    created_at: str
    updated_at: str
    permission: str | None = None  # the author's permission when Kickoff knew it at the trigger (the sender's)


@dataclass(frozen=True)
class Snapshot:
    number: int
    title: str
    body: str
    author: str | None
    author_type: str
    event_at: str
    comments: tuple[FrozenComment, ...] = ()
    comments_complete: bool = True  # False when the comments could not be listed at the trigger
    comments_omitted: int = 0  # older comments beyond the bounds
    version: int = SNAPSHOT_VERSION

    def dump(self) -> str:
        data = asdict(self)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def load(cls, text: str, sha256: str) -> Snapshot:
        """The snapshot stored as `text`, after checking it against its hash."""
        if digest(text) != sha256:
            raise SnapshotError("the trigger's snapshot does not match its sha256")
        try:
            data = json.loads(text)
            comments = tuple(FrozenComment(**c) for c in data.pop("comments"))
            return cls(comments=comments, **data)
        except (ValueError, TypeError, KeyError) as exc:
            raise SnapshotError(f"the trigger's snapshot cannot be read ({type(exc).__name__})") from exc


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    login: str
    type: str = "User"


class _Issue(BaseModel):
    """An issue or pull request as a payload or `GET /repos/{o}/{r}/issues/{n}` has it."""

    model_config = ConfigDict(extra="ignore")
    number: int | None = None
    title: str = ""
    body: str | None = None
    user: _User | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, issue: Issue) -> _Issue:
        user = None if issue.author is None else _User(login=issue.author, type=issue.author_type)
        return cls(number=issue.number, title=issue.title, body=issue.body, user=user, updated_at=issue.updated_at)


class _Stamped(BaseModel):
    model_config = ConfigDict(extra="ignore")
    created_at: datetime | None = None
    submitted_at: datetime | None = None


def _from_payload(payload: dict[str, Any], number: int) -> tuple[_Issue | None, datetime | None]:
    """The issue (or pull request) a delivery carries, and when its event happened, if the payload says."""
    issue: _Issue | None = None
    for key in ("issue", "pull_request"):
        if isinstance(payload.get(key), dict):
            try:
                found = _Issue.model_validate(payload[key])
            except ValidationError:
                continue
            if found.number == number:
                issue = found
                break
    event_at: datetime | None = None
    for key in ("comment", "review"):
        if isinstance(payload.get(key), dict):
            try:
                stamped = _Stamped.model_validate(payload[key])
            except ValidationError:
                continue
            event_at = stamped.created_at or stamped.submitted_at
            break
    if event_at is None and issue is not None and "label" in payload:
        event_at = issue.updated_at  # labelling the issue is its latest update
    return issue, event_at


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


async def take_snapshot(
    github: GitHubAPI,
    installation_id: int,
    owner: str,
    repo: str,
    number: int,
    payload: dict[str, Any],
    *,
    now: datetime,
    sender: str,
    sender_permission: Permission | None = None,
) -> Snapshot | None:
    """The issue's text and comments as they are at the trigger; None when even the issue cannot be read."""
    issue, event_at = _from_payload(payload, number)
    if issue is None:
        try:
            issue = _Issue.of(await github.get_issue(installation_id, owner, repo, number))
        except GitHubError as exc:
            log.warning("no snapshot of %s/%s#%s: %s", owner, repo, number, exc)
            return None
    cutoff = event_at or now
    complete = True
    try:
        comments = await github.list_issue_comments(installation_id, owner, repo, number)
    except GitHubError as exc:
        log.warning("the snapshot of %s/%s#%s has no comments: %s", owner, repo, number, exc)
        comments, complete = [], False
    # The comments made after the event (an attacker racing the trigger) are not part of it.
    kept = [c for c in comments if c.author_type != "Bot" and c.created_at <= cutoff]
    return await asyncio.to_thread(_build, issue, number, cutoff, kept, complete, sender, sender_permission)


def _build(
    issue: _Issue, number: int, event_at: datetime, comments: Sequence[IssueComment], complete: bool, sender: str,
    sender_permission: Permission | None,
) -> Snapshot:
    """Clean and bound (off the event loop: cleaning is linear, but 100 comments of 64 KB are still work)."""
    frozen: list[FrozenComment] = []
    total = 0
    for comment in reversed(comments[-MAX_SNAPSHOT_COMMENTS:]):
        body = clean_untrusted(comment.body)
        if not body.strip():
            continue
        if total + len(body) > SNAPSHOT_COMMENT_CHARS:
            break
        total += len(body)
        known = sender_permission if comment.author.lower() == sender.lower() else None
        frozen.append(FrozenComment(comment.id, comment.author, comment.author_type, body,
                                    _iso(comment.created_at), _iso(comment.updated_at), known))
    frozen.reverse()
    user = issue.user
    return Snapshot(
        number=number,
        title=" ".join(clean_untrusted(issue.title, TITLE_CHARS).split()),
        body=clean_untrusted(issue.body or ""),
        author=user.login if user else None,
        author_type=user.type if user else "User",
        event_at=_iso(event_at),
        comments=tuple(frozen),
        comments_complete=complete,
        comments_omitted=len(comments) - len(frozen),
    )


@dataclass
class Trust:
    """Whether a person's text may reach the agent: they could start this task themselves. One lookup per person."""

    github: GitHubAPI
    installation_id: int
    owner: str
    repo: str
    task: str
    min_permission: Permission = "write"
    allow_users: frozenset[str] = frozenset()
    _known: dict[str, bool] = field(default_factory=dict)

    @property
    def required(self) -> Permission:
        return required_permission(self.task, self.min_permission)

    async def __call__(self, login: str | None, author_type: str = "User") -> bool:
        if not login or author_type == "Bot":
            return False  # bots (Kickoff's own comments, CI) never speak to the agent
        key = login.lower()
        if key in self.allow_users:
            return True
        if key not in self._known:
            if len(self._known) >= MAX_PERMISSION_LOOKUPS:
                return False
            try:
                held = await self.github.get_collaborator_permission(self.installation_id, self.owner, self.repo,
                                                                     login)
            except GitHubError as exc:
                log.warning("could not look up %s's permission; their text is left out: %s", login, exc)
                held = "none"
            self._known[key] = permission_at_least(held, self.required)
        return self._known[key]


@dataclass(frozen=True)
class IssueText:
    """The issue and comments a prompt quotes, decided; rendering (cleaning, fencing) happens off the event loop."""

    title: str
    body: str
    author: str | None
    author_trusted: bool
    frozen: bool  # the text is the snapshot's (False: live, because its author may edit it or there is none)
    digest: str | None
    comments: tuple[tuple[str, str], ...]  # (author, body), oldest first
    left_out: int
    required: Permission


async def issue_text(
    github: GitHubAPI, trust: Trust, number: int, snapshot: Snapshot | None, sha256: str | None,
    *, read_live: bool = True,
) -> IssueText:
    """Decide what of the issue reaches the agent (module docstring): snapshot, live permission, live text.

    Without `read_live` (a run starting moments after its trigger) the snapshot's text and comments are used as they
    are, with the same live permission check of each author: the snapshot is never less safe than the live text,
    and an edit in the seconds since the trigger is not worth two GitHub reads per fan-out (issue 15)."""
    repo = github.for_repo(trust.installation_id, f"{trust.owner}/{trust.repo}")
    if snapshot is None:
        live = await repo.get_issue(number)
        author = live.author
        trusted = await trust(author, live.author_type)
        title, body, frozen = live.title, live.body, False
    else:
        author = snapshot.author
        trusted = await trust(author, snapshot.author_type)
        title, body, frozen = snapshot.title, snapshot.body, True
        if trusted and read_live:
            try:
                live = await repo.get_issue(number)
                title, body, frozen = live.title, live.body, False
            except GitHubError as exc:
                log.info("the issue could not be read again, the snapshot is used: %s", exc)
    if snapshot is not None and not read_live and snapshot.comments_complete:
        candidates = [(c.author, c.author_type, c.body) for c in snapshot.comments]
    else:
        try:
            listed = await github.list_issue_comments(trust.installation_id, trust.owner, trust.repo, number)
            candidates = [(c.author, c.author_type, c.body) for c in listed]
        except GitHubError:
            if snapshot is None:
                raise
            candidates = [(c.author, c.author_type, c.body) for c in snapshot.comments]
    kept: list[tuple[str, str]] = []
    left_out = 0
    for author_login, author_type, text in reversed(candidates):  # newest first: the prompt keeps the latest
        if author_type == "Bot" or not text.strip():
            continue
        if len(kept) >= MAX_COMMENTS_IN_PROMPT:
            break
        if await trust(author_login, author_type):
            kept.append((author_login, text))
        else:
            left_out += 1
    kept.reverse()
    return IssueText(title, body, author, trusted, frozen, sha256 if frozen else None, tuple(kept), left_out,
                     trust.required)
