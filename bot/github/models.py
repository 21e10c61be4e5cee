"""What the gateway's verbs return: small frozen values, never GitHub's raw dicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
PERMISSIONS: tuple[Permission, ...] = ("none", "read", "triage", "write", "maintain", "admin")
"""Weakest first, so `PERMISSIONS.index(a) >= PERMISSIONS.index(b)` means a is at least b."""

Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


def permission_at_least(held: Permission, needed: Permission) -> bool:
    return PERMISSIONS.index(held) >= PERMISSIONS.index(needed)


@dataclass(frozen=True)
class Repository:
    id: int
    owner: str
    name: str
    full_name: str
    default_branch: str
    private: bool
    fork: bool
    archived: bool
    html_url: str
    clone_url: str


@dataclass(frozen=True)
class IssueComment:
    id: int
    body: str
    author: str
    """The commenter's login (`ghost` for a deleted account)."""
    author_type: str
    """`User`, `Bot` or `Organization`, as GitHub reports it."""
    created_at: datetime
    updated_at: datetime
    html_url: str


@dataclass(frozen=True)
class Issue:
    """An issue or pull request (a pull request is an issue) as its page shows it."""

    number: int
    title: str
    body: str
    author: str | None
    """The opener's login; None when GitHub names no user."""
    author_type: str
    updated_at: datetime | None
    state: str  # open | closed
    is_pull_request: bool
    html_url: str


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    type: str  # User | Bot | Organization


@dataclass(frozen=True)
class AppIdentity:
    """The App itself (`GET /app`): its slug names its bot user."""

    id: int
    slug: str
    name: str

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass(frozen=True)
class HookDelivery:
    """One attempt at delivering a webhook, as the App's delivery log lists it."""

    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool
    status: str
    status_code: int
    event: str
    action: str | None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def refused(self) -> bool:
        """Kickoff answered and refused it (bad signature, malformed, too large): sending it again changes nothing."""
        return 400 <= self.status_code < 500

    @property
    def key(self) -> str:
        return f"{self.event}.{self.action}" if self.action else self.event


@dataclass(frozen=True)
class WorkflowRun:
    """A GitHub Actions workflow run, as the `github-actions` runner follows it."""

    id: int
    display_title: str
    status: str | None
    """`queued`, `in_progress`, `completed`, … (None when GitHub leaves it out)."""
    conclusion: str | None
    """Once completed: `success`, `failure`, `cancelled`, `timed_out`, …"""
    html_url: str
    created_at: datetime


class FileContent(NamedTuple):
    """A file's text and its blob sha (the sha GitHub wants back when the file is updated)."""

    text: str
    sha: str


# ---- Pull requests and checks (bot.prs) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequestInfo:
    """A pull request as the pull-request feature reads it."""

    number: int
    state: str  # open | closed
    merged: bool
    draft: bool
    title: str
    author: str
    head_ref: str
    head_sha: str
    head_repo: str | None  # owner/name of the head's repository; None when that fork was deleted
    base_ref: str
    mergeable: bool | None  # None while GitHub computes it
    html_url: str

    def fork_of(self, repository: str) -> str | None:
        """The fork the head branch comes from, or None when it lives in `repository` itself."""
        if self.head_repo is None:
            return "a deleted fork"
        return None if self.head_repo.lower() == repository.lower() else self.head_repo


@dataclass(frozen=True)
class CheckRunAction:
    """A check run button: label ≤ 20, description ≤ 40, identifier ≤ 20 characters (GitHub's limits)."""

    label: str
    description: str
    identifier: str


@dataclass(frozen=True)
class CheckRunInfo:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    app_id: int | None
    title: str
    summary: str


@dataclass(frozen=True)
class ReviewComment:
    """A review comment on a pull request's diff; `outdated` when it no longer applies to the head."""

    id: int
    body: str
    author: str
    author_type: str
    path: str
    line: int | None
    outdated: bool


# ---- Review queue (bot.queue) --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitStatus:
    """The latest commit status of one context on a commit."""

    context: str
    state: str  # error | failure | pending | success


@dataclass(frozen=True)
class PullReview:
    id: int
    author: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING


@dataclass(frozen=True)
class Comparison:
    """`base...head`: `ahead` or `identical` means that head contains base."""

    status: str  # ahead | behind | identical | diverged
    ahead_by: int
    behind_by: int

    @property
    def head_contains_base(self) -> bool:
        return self.status in ("ahead", "identical")
