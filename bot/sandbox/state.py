"""The sandbox's world: plain records of users, apps, installations, repositories and everything on them.

Branch heads and file contents are not here: they live in the real bare git repositories (see `git.py`).
All mutation happens on the sandbox's engine loop, so these records need no locks.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

PermissionLevel = Literal["read", "write", "admin"]
RoleName = Literal["admin", "maintain", "write", "triage", "read", "none"]
RequestKind = Literal["rest", "git", "control", "web"]
ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "PENDING", "DISMISSED"]
ROLE_RANK: dict[str, int] = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
ACCESS_RANK: dict[str, int] = {"none": 0, "read": 1, "write": 2, "admin": 3}

# Every event the sandbox sends that an App subscribes to (all, unless it lists its own); `installation`
# events go to every App regardless.
ALL_EVENTS = [
    "check_run",
    "check_suite",
    "issue_comment",
    "issues",
    "label",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
    "status",
]

# Which installation permission an event needs before an App is sent it.
EVENT_PERMISSION: dict[str, tuple[str, ...]] = {
    "check_run": ("checks",),
    "check_suite": ("checks",),
    "issue_comment": ("issues", "pull_requests"),
    "issues": ("issues",),
    "label": ("metadata",),
    "pull_request": ("pull_requests",),
    "pull_request_review": ("pull_requests",),
    "pull_request_review_comment": ("pull_requests",),
    "push": ("contents",),
    "status": ("statuses",),
    "installation": (),
}


def node_id(kind: str, ident: int) -> str:
    """Opaque global ids in GitHub's legacy style (`MDQ6VXNlcjE=` is base64 of `04:User1`)."""
    raw = f"0{len(kind)}:{kind}{ident}".encode()
    return base64.b64encode(raw).decode().rstrip("=")


@dataclass
class User:
    id: int
    login: str
    type: Literal["User", "Bot", "Organization"] = "User"
    name: str | None = None
    email: str | None = None


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: User
    bot: User
    public_key_pem: str
    private_key_pem: str | None
    webhook_url: str | None
    webhook_secret: str | None
    permissions: dict[str, str]
    events: list[str]
    client_id: str
    client_secret: str
    created_at: datetime
    description: str | None = None
    external_url: str = "https://example.invalid"
    webhook_active: bool = True
    internal: bool = False


@dataclass
class Installation:
    id: int
    app_id: int
    account: User
    repository_selection: Literal["all", "selected"]
    repo_ids: set[int]
    permissions: dict[str, str]
    events: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: datetime
    permissions: dict[str, str]
    repo_ids: set[int] | None  # None: every repository the installation covers
    issued_at: datetime | None = None
    revoked_at: datetime | None = None  # DELETE /installation/token: answered 401 from then on

    @property
    def live(self) -> bool:
        return self.revoked_at is None


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Reaction:
    id: int
    user: User
    content: str
    created_at: datetime


@dataclass
class Comment:
    id: int
    repo_id: int
    issue_number: int
    user: User
    body: str
    created_at: datetime
    updated_at: datetime
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Review:
    id: int
    user: User
    body: str
    state: ReviewState
    commit_id: str
    submitted_at: datetime | None


@dataclass
class ReviewComment:
    id: int
    review_id: int | None
    user: User
    body: str
    path: str
    line: int | None
    side: str
    commit_id: str
    original_commit_id: str
    created_at: datetime
    updated_at: datetime
    in_reply_to_id: int | None = None


@dataclass
class PullRequest:
    id: int
    head_ref: str
    base_ref: str
    draft: bool
    maintainer_can_modify: bool = True
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: User | None = None
    merge_commit_sha: str | None = None
    frozen_head_sha: str | None = None  # head when the PR was closed, for when the branch is gone
    frozen_base_sha: str | None = None
    requested_reviewers: list[User] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    review_comments: list[ReviewComment] = field(default_factory=list)


@dataclass
class Issue:
    id: int
    repo_id: int
    number: int
    title: str
    body: str | None
    user: User
    created_at: datetime
    updated_at: datetime
    state: Literal["open", "closed"] = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: User | None = None
    locked: bool = False
    labels: list[str] = field(default_factory=list)  # names, in the order they were added
    assignees: list[User] = field(default_factory=list)
    comment_ids: list[int] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    pull: PullRequest | None = None


@dataclass
class CiConfig:
    argv: list[str]
    timeout: float = 300.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Protection:
    """The branch-protection rules the sandbox models: required checks, up-to-date, approvals."""

    required_checks: list[str] = field(default_factory=list)
    strict: bool = False
    required_approvals: int = 0


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    private: bool
    default_branch: str
    path: Path
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime
    description: str | None = None
    labels: dict[str, Label] = field(default_factory=dict)  # key: lower-cased name
    roles: dict[str, RoleName] = field(default_factory=dict)  # login -> role
    issues: dict[int, Issue] = field(default_factory=dict)
    next_number: int = 1
    ci: CiConfig | None = None
    protection: dict[str, Protection] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class CheckSuite:
    id: int
    repo_id: int
    app_id: int
    head_sha: str
    head_branch: str | None
    created_at: datetime
    updated_at: datetime
    completed_announced: bool = False


@dataclass
class CheckRun:
    id: int
    suite_id: int
    repo_id: int
    app_id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: datetime | None
    completed_at: datetime | None
    external_id: str | None
    details_url: str | None
    output: dict[str, Any]
    actions: list[dict[str, str]]


@dataclass
class CommitStatus:
    id: int
    repo_id: int
    sha: str
    state: str
    target_url: str | None
    description: str | None
    context: str
    creator: User
    created_at: datetime
    updated_at: datetime


@dataclass
class DeliveryAttempt:
    at: datetime
    status: str
    status_code: int


@dataclass
class Delivery:
    id: int
    guid: str
    app_id: int
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    body: bytes
    request_headers: dict[str, str]
    redelivery: bool
    created_at: datetime
    status: str = "pending"
    status_code: int = 0
    delivered_at: datetime | None = None
    duration: float = 0.0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass
class ManifestCode:
    code: str
    app_id: int
    expires_at: datetime
    used: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One REST, git or control request the sandbox served, as tests want to assert on it."""

    method: str
    path: str
    status: int
    installation_id: int | None = None
    app_id: int | None = None
    actor: str | None = None
    kind: RequestKind = "rest"
    route: str | None = None
    """The route template that served it (`/repos/{owner}/{repo}/pulls/{pull_number}`), None when none did."""

    @property
    def endpoint(self) -> str:
        """`METHOD /route/template`, or the bare path when no route matched."""
        return f"{self.method} {self.route or self.path}"

    @property
    def not_modified(self) -> bool:
        """A `304 Not Modified`: an ETag matched, and GitHub does not count it against the rate limit."""
        return self.status == 304


class Ids:
    """Id sequences per kind, spread apart so an id mix-up shows in a test."""

    def __init__(self) -> None:
        self._seqs: dict[str, itertools.count[int]] = {}
        self._bases = {
            "user": 1000,
            "app": 100,
            "installation": 5000,
            "repo": 20000,
            "issue": 300000,
            "pull": 400000,
            "comment": 500000,
            "label": 600000,
            "reaction": 700000,
            "review": 800000,
            "review_comment": 850000,
            "check_suite": 900000,
            "check_run": 950000,
            "status": 1100000,
            "delivery": 1,
        }

    def next(self, kind: str) -> int:
        if kind not in self._seqs:
            self._seqs[kind] = itertools.count(self._bases.get(kind, 1) + 1)
        return next(self._seqs[kind])


@dataclass
class State:
    """Everything the sandbox knows, keyed for the lookups the API needs."""

    ids: Ids = field(default_factory=Ids)
    users: dict[str, User] = field(default_factory=dict)  # key: lower-cased login
    apps: dict[int, App] = field(default_factory=dict)
    installations: dict[int, Installation] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)  # personal token -> login
    repos: dict[str, Repo] = field(default_factory=dict)  # key: lower-cased full name
    comments: dict[int, Comment] = field(default_factory=dict)
    check_suites: dict[int, CheckSuite] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    statuses: list[CommitStatus] = field(default_factory=list)
    deliveries: dict[int, Delivery] = field(default_factory=dict)
    manifest_codes: dict[str, ManifestCode] = field(default_factory=dict)

    def repo_by_id(self, repo_id: int) -> Repo | None:
        for repo in self.repos.values():
            if repo.id == repo_id:
                return repo
        return None

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def user(self, login: str) -> User | None:
        return self.users.get(login.lower())
