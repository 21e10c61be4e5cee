"""Minimal typed payloads: only the fields Kickoff reads, validated at the boundary.

githubkit's generated webhook models are strict about fields GitHub added over the years (`app_slug`,
`archived_by`, `performed_via_github_app`, …) and reject about a third of GitHub's own published example
payloads, so handlers parse into these small models instead. Unknown fields are ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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


class IssueCommentEvent(_Model):
    action: str
    issue: Issue
    comment: Comment
    repository: Repository
    sender: User
    installation: InstallationRef | None = None
