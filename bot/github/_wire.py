"""Minimal models of the GitHub responses the verbs read (only the fields used; extra fields are ignored)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from bot.github.models import (
    PERMISSIONS,
    AppIdentity,
    CheckRunInfo,
    CommitStatus,
    Comparison,
    GitHubUser,
    HookDelivery,
    Issue,
    IssueComment,
    Permission,
    PullRequestInfo,
    PullReview,
    Repository,
    ReviewComment,
    WorkflowRun,
)


class Id(BaseModel):
    id: int


class _Login(BaseModel):
    login: str
    type: str = "User"


class Repo(BaseModel):
    id: int
    name: str
    full_name: str
    owner: _Login
    default_branch: str = "main"
    private: bool = False
    fork: bool = False
    archived: bool = False
    html_url: str = ""
    clone_url: str = ""

    def to_domain(self) -> Repository:
        return Repository(
            id=self.id,
            owner=self.owner.login,
            name=self.name,
            full_name=self.full_name,
            default_branch=self.default_branch,
            private=self.private,
            fork=self.fork,
            archived=self.archived,
            html_url=self.html_url,
            clone_url=self.clone_url,
        )


class Comment(BaseModel):
    id: int
    body: str | None = None
    user: _Login | None = None
    created_at: datetime
    updated_at: datetime
    html_url: str = ""

    def to_domain(self) -> IssueComment:
        user = self.user or _Login(login="ghost")
        return IssueComment(
            id=self.id,
            body=self.body or "",
            author=user.login,
            author_type=user.type,
            created_at=self.created_at,
            updated_at=self.updated_at,
            html_url=self.html_url,
        )


class IssueData(BaseModel):
    number: int
    title: str = ""
    body: str | None = None
    user: _Login | None = None
    updated_at: datetime | None = None
    state: str = "open"
    pull_request: dict[str, object] | None = None
    html_url: str = ""

    def to_domain(self) -> Issue:
        return Issue(
            number=self.number,
            title=self.title,
            body=self.body or "",
            author=self.user.login if self.user else None,
            author_type=self.user.type if self.user else "User",
            updated_at=self.updated_at,
            state=self.state,
            is_pull_request=self.pull_request is not None,
            html_url=self.html_url,
        )


class LabelName(BaseModel):
    name: str


class User(BaseModel):
    id: int
    login: str
    type: str = "User"

    def to_domain(self) -> GitHubUser:
        return GitHubUser(self.id, self.login, self.type)


class App(BaseModel):
    id: int
    slug: str
    name: str = ""

    def to_domain(self) -> AppIdentity:
        return AppIdentity(self.id, self.slug, self.name or self.slug)


class Delivery(BaseModel):
    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool = False
    status: str = ""
    status_code: int = 0
    event: str = ""
    action: str | None = None

    def to_domain(self) -> HookDelivery:
        return HookDelivery(
            self.id, self.guid, self.delivered_at, self.redelivery, self.status, self.status_code, self.event,
            self.action,
        )


class Content(BaseModel):
    type: str
    sha: str
    encoding: str | None = None
    content: str | None = None


class Blob(BaseModel):
    sha: str
    encoding: str
    content: str


class CollaboratorPermission(BaseModel):
    permission: str
    role_name: str | None = None

    def effective(self) -> Permission:
        """`role_name` distinguishes maintain and triage; a custom role falls back to its base `permission`."""
        for candidate in (self.role_name, self.permission):
            for known in PERMISSIONS:
                if candidate == known:
                    return known
        return "none"


# ---- Pull requests and checks (bot.prs) ---------------------------------------------------------------------------


class _RepoName(BaseModel):
    full_name: str


class _Branch(BaseModel):
    ref: str
    sha: str
    repo: _RepoName | None = None


class Pull(BaseModel):
    number: int
    state: str = "open"
    merged: bool | None = None
    merged_at: datetime | None = None
    draft: bool | None = False
    title: str = ""
    user: _Login | None = None
    head: _Branch
    base: _Branch
    mergeable: bool | None = None
    html_url: str = ""

    def to_domain(self) -> PullRequestInfo:
        return PullRequestInfo(
            number=self.number,
            state=self.state,
            merged=bool(self.merged) or self.merged_at is not None,
            draft=bool(self.draft),
            title=self.title,
            author=(self.user or _Login(login="ghost")).login,
            head_ref=self.head.ref,
            head_sha=self.head.sha,
            head_repo=self.head.repo.full_name if self.head.repo else None,
            base_ref=self.base.ref,
            mergeable=self.mergeable,
            html_url=self.html_url,
        )


class _App(BaseModel):
    id: int


class _CheckOutput(BaseModel):
    title: str | None = None
    summary: str | None = None


class CheckRun(BaseModel):
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None = None
    app: _App | None = None
    output: _CheckOutput = _CheckOutput()

    def to_domain(self) -> CheckRunInfo:
        return CheckRunInfo(
            id=self.id,
            name=self.name,
            head_sha=self.head_sha,
            status=self.status,
            conclusion=self.conclusion,
            app_id=self.app.id if self.app else None,
            title=self.output.title or "",
            summary=self.output.summary or "",
        )


class PullComment(BaseModel):
    id: int
    body: str = ""
    user: _Login | None = None
    path: str = ""
    line: int | None = None
    position: int | None = None

    def to_domain(self) -> ReviewComment:
        user = self.user or _Login(login="ghost")
        return ReviewComment(
            id=self.id, body=self.body, author=user.login, author_type=user.type, path=self.path, line=self.line,
            outdated=self.position is None,
        )


class Run(BaseModel):
    id: int
    display_title: str = ""
    status: str | None = None
    conclusion: str | None = None
    html_url: str = ""
    created_at: datetime

    def to_domain(self) -> WorkflowRun:
        return WorkflowRun(self.id, self.display_title, self.status, self.conclusion, self.html_url, self.created_at)


class Runs(BaseModel):
    workflow_runs: list[Run]


class DispatchedRun(BaseModel):
    workflow_run_id: int


# ---- Review queue (bot.queue) --------------------------------------------------------------------------------------


class Status(BaseModel):
    context: str
    state: str

    def to_domain(self) -> CommitStatus:
        return CommitStatus(self.context, self.state)


class Review(BaseModel):
    id: int
    user: _Login | None = None
    state: str

    def to_domain(self) -> PullReview:
        return PullReview(self.id, (self.user or _Login(login="ghost")).login, self.state)


class PullFile(BaseModel):
    filename: str
    previous_filename: str | None = None


class _GitObject(BaseModel):
    sha: str


class GitRef(BaseModel):
    object: _GitObject


class Compare(BaseModel):
    status: str
    ahead_by: int = 0
    behind_by: int = 0

    def to_domain(self) -> Comparison:
        return Comparison(self.status, self.ahead_by, self.behind_by)


class MergeResult(BaseModel):
    sha: str
    merged: bool = True
