"""Minimal typed payloads: only the fields Kickoff reads, validated at the boundary.

githubkit's generated webhook models are strict about fields GitHub added over the years (`app_slug`,
`archived_by`, `performed_via_github_app`, …) and reject about a third of GitHub's own published example
payloads, so handlers parse into these small models instead. Unknown fields are ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    login: str
    id: int
    type: str = "User"


class Account(_Model):
    login: str
    id: int | None = None
    type: str = "User"


class InstallationRef(_Model):
    id: int


class Installation(_Model):
    id: int
    account: Account


class RepositoryOwner(_Model):
    login: str


class Repository(_Model):
    id: int
    name: str
    full_name: str
    owner: RepositoryOwner
    private: bool = False
    default_branch: str | None = None
    fork: bool = False


class RepoSummary(_Model):
    id: int
    full_name: str
    private: bool = False


class Label(_Model):
    name: str


class Issue(_Model):
    number: int
    title: str
    body: str | None = None
    user: User
    labels: list[Label] = []
    state: str = "open"
    pull_request: dict[str, object] | None = None

    @property
    def is_pull_request(self) -> bool:
        return self.pull_request is not None


class Comment(_Model):
    id: int
    body: str | None = None
    user: User


class InstallationEvent(_Model):
    action: str
    installation: Installation
    repositories: list[RepoSummary] | None = None
    sender: User


class InstallationRepositoriesEvent(_Model):
    action: str
    installation: Installation
    repositories_added: list[RepoSummary] = []
    repositories_removed: list[RepoSummary] = []
    sender: User


class IssuesEvent(_Model):
    action: str
    issue: Issue
    label: Label | None = None
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


# Triggers.


class AppRef(_Model):
    id: int
    slug: str | None = None


class AuthoredComment(_Model):
    """A comment or a review: its text, its author, and the App that posted it (None when a person did)."""

    id: int
    body: str | None = None
    user: User | None = None
    performed_via_github_app: AppRef | None = None


class BodyChange(_Model):
    previous: str | None = Field(default=None, alias="from")


class CommentChanges(_Model):
    body: BodyChange | None = None


class IssueCommentCommandEvent(_Model):
    """`issue_comment.created` / `.edited` as the slash-command handlers read it."""

    action: str
    issue: Issue
    comment: AuthoredComment
    changes: CommentChanges | None = None
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class RepoName(_Model):
    full_name: str


class BranchRef(_Model):
    ref: str
    sha: str | None = None
    repo: RepoName | None = None  # None when the fork the branch lived in was deleted


class PullRequestRef(_Model):
    """A pull request's number and branches (from a payload or `GET /repos/{o}/{r}/pulls/{n}`)."""

    number: int
    head: BranchRef
    base: BranchRef
    user: User | None = None

    def fork_of(self, repository: str) -> str | None:
        """The fork the head branch comes from, or None when it lives in `repository` itself."""
        head = self.head.repo
        if head is None:
            return "a deleted fork"
        return None if head.full_name.lower() == repository.lower() else head.full_name


class PullRequestReviewCommentEvent(_Model):
    action: str
    comment: AuthoredComment
    pull_request: PullRequestRef
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class PullRequestReviewEvent(_Model):
    action: str
    review: AuthoredComment
    pull_request: PullRequestRef
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class AppInfo(_Model):
    """`GET /app`: the App's slug names its bot user (`<slug>[bot]`)."""

    id: int | None = None
    slug: str


# Pull requests (bot.prs, bot.handlers.pull_requests).


class PullRequestPayload(_Model):
    number: int
    state: str = "open"
    merged: bool | None = None
    draft: bool | None = False
    title: str = ""
    head: BranchRef
    base: BranchRef
    user: User | None = None
    mergeable: bool | None = None


class PullRequestEvent(_Model):
    action: str
    pull_request: PullRequestPayload
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class PullNumber(_Model):
    """An entry of a check run's or suite's `pull_requests` (its `repo` carries no `full_name`)."""

    number: int


class CheckApp(_Model):
    id: int
    slug: str | None = None


class CheckRunSuite(_Model):
    head_branch: str | None = None


class CheckRunPayload(_Model):
    id: int
    name: str
    head_sha: str
    status: str = "completed"
    conclusion: str | None = None
    external_id: str | None = None
    app: CheckApp | None = None
    pull_requests: list[PullNumber] = []
    check_suite: CheckRunSuite | None = None


class RequestedAction(_Model):
    identifier: str


class CheckRunEvent(_Model):
    action: str
    check_run: CheckRunPayload
    requested_action: RequestedAction | None = None
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class CheckSuitePayload(_Model):
    id: int
    head_sha: str
    status: str | None = None
    conclusion: str | None = None
    app: CheckApp | None = None
    pull_requests: list[PullNumber] = []


class CheckSuiteEvent(_Model):
    action: str
    check_suite: CheckSuitePayload
    repository: Repository
    sender: User
    installation: InstallationRef | None = None


class StatusEvent(_Model):
    sha: str
    state: str
    context: str = ""
    repository: Repository
    sender: User | None = None
    installation: InstallationRef | None = None


class PushCommit(_Model):
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []


PUSH_COMMITS_LISTED = 20
"""A push webhook lists at most this many commits (`commits`); a longer push cannot tell every file it touched."""


class PushEvent(_Model):
    ref: str
    deleted: bool = False
    created: bool = False
    forced: bool = False
    commits: list[PushCommit] = []
    repository: Repository
    sender: User | None = None
    installation: InstallationRef | None = None

    def touched(self) -> set[str] | None:
        """The paths the push added, removed or changed; None when the payload cannot tell (a new branch, a force
        push, which may drop commits it does not list, or more commits than a payload lists)."""
        if self.created or self.forced or not self.commits or len(self.commits) >= PUSH_COMMITS_LISTED:
            return None
        return {path for commit in self.commits for path in (*commit.added, *commit.removed, *commit.modified)}
