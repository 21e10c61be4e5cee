"""What decision code may ask of GitHub: `GitHubVerbs`, one coroutine per thing Kickoff does there.

`bot.github.gateway.GitHubGateway` implements it over githubkit and `tests/fake_github.py` in memory (checked
against each other by tests/github/test_contract.py). Errors are `bot.github.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.github.auth import InstallationToken
from bot.github.models import (
    AppIdentity,
    CheckRunAction,
    CheckRunInfo,
    CommitStatus,
    Comparison,
    FileContent,
    GitHubUser,
    HookDelivery,
    Issue,
    IssueComment,
    Permission,
    PullRequestInfo,
    PullReview,
    Reaction,
    Repository,
    ReviewComment,
    WorkflowRun,
)

if TYPE_CHECKING:
    from bot.github.repo import RepoGateway



class GitHubVerbs(Protocol):
    """The GitHub verbs decision code may use. Every method is a coroutine; errors are `bot.github.errors`."""

    def for_repo(self, installation_id: int, full_name: str) -> RepoGateway:
        """These verbs for one repository (`owner/name`) of one installation, without the triple on every call."""
        ...

    async def get_installation_for_repo(self, owner: str, repo: str) -> int:
        """The id of the App's installation on a repository (`NotFound` when the App is not installed)."""
        ...

    async def get_repository(self, installation_id: int, owner: str, repo: str) -> Repository: ...

    async def get_file(
        self, installation_id: int, owner: str, repo: str, path: str, ref: str | None = None
    ) -> FileContent | None:
        """A file's text and blob sha at `ref` (default branch when None); None when there is no file there."""
        ...

    async def comment(self, installation_id: int, owner: str, repo: str, issue_number: int, body: str) -> int:
        """Comment on an issue or pull request; returns the comment id."""
        ...

    async def edit_comment(self, installation_id: int, owner: str, repo: str, comment_id: int, body: str) -> None: ...

    async def add_reaction_to_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None: ...

    async def add_labels(
        self, installation_id: int, owner: str, repo: str, issue_number: int, labels: Sequence[str]
    ) -> None: ...

    async def remove_label(self, installation_id: int, owner: str, repo: str, issue_number: int, label: str) -> None:
        """Remove a label; a label that is not there is not an error."""
        ...

    async def get_issue(self, installation_id: int, owner: str, repo: str, number: int) -> Issue:
        """An issue or pull request as it is now (`NotFound` when there is none)."""
        ...

    async def list_labels(self, installation_id: int, owner: str, repo: str, issue_number: int) -> list[str]:
        """The names of an issue's or pull request's labels, as they are now."""
        ...

    async def add_reaction_to_issue(
        self, installation_id: int, owner: str, repo: str, issue_number: int, content: Reaction
    ) -> None:
        """React to the issue (or pull request) itself, e.g. to a label that has no comment to react to."""
        ...

    async def add_reaction_to_review_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        """React to a review comment on a pull request's diff (its ids are not issue comments')."""
        ...

    async def get_collaborator_permission(
        self, installation_id: int, owner: str, repo: str, username: str
    ) -> Permission:
        """The user's live permission on the repository; "none" for a user GitHub does not know."""
        ...

    async def list_issue_comments(
        self, installation_id: int, owner: str, repo: str, issue_number: int
    ) -> list[IssueComment]:
        """Every comment of an issue or pull request, oldest first."""
        ...

    async def mint_run_token(
        self, installation_id: int, repo: str, permissions: Mapping[str, str]
    ) -> InstallationToken:
        """A fresh token for one run: one repository (bare name), only `permissions`. Never cached or logged."""
        ...

    async def dispatch_workflow(
        self,
        installation_id: int,
        owner: str,
        repo: str,
        workflow: str,
        ref: str,
        inputs: Mapping[str, str],
        return_run_details: bool = True,
    ) -> int | None:
        """Start a `workflow_dispatch` workflow (file name or id) on `ref`; the new run's id when GitHub says it.

        Servers without `return_run_details` (older GHES) answer 400 to it: `GitHubError` with status 400.
        """
        ...

    async def get_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> WorkflowRun: ...

    async def list_workflow_runs(
        self, installation_id: int, owner: str, repo: str, workflow: str, created_since: datetime
    ) -> list[WorkflowRun]:
        """The `workflow_dispatch` runs of one workflow created since then, newest first (one page)."""
        ...

    async def cancel_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> None:
        """Cancel a workflow run; one that already completed is fine."""
        ...

    async def revoke_token(self, token: InstallationToken) -> None:
        """Revoke a token before it expires (a finished run's); an already dead token is fine."""
        ...

    # The App itself and its webhook deliveries (as the App, with its JWT).

    async def get_app(self) -> AppIdentity:
        """The App (`GET /app`), asked of GitHub once per gateway and kept: its slug names the bot user."""
        ...

    async def get_user(self, installation_id: int, login: str) -> GitHubUser:
        """A user's public profile (`NotFound` for a login GitHub does not know)."""
        ...

    def list_hook_deliveries(self) -> AsyncIterator[HookDelivery]:
        """The App's webhook delivery attempts, newest first, fetched page by page as they are read."""
        ...

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        """Ask GitHub to send a delivery attempt again."""
        ...

    # Pull requests and checks (bot.prs).

    async def open_pull_request(
        self, installation_id: int, owner: str, repo: str, *, head: str, base: str, title: str, body: str,
        draft: bool = False,
    ) -> PullRequestInfo:
        """Open a pull request from branch `head` of the repository itself into `base`."""
        ...

    async def get_pull_request(self, installation_id: int, owner: str, repo: str, number: int) -> PullRequestInfo: ...

    async def find_pull_requests(
        self, installation_id: int, owner: str, repo: str, *, head: str, state: str = "open"
    ) -> list[PullRequestInfo]:
        """The pull requests whose head is branch `head` of the repository itself."""
        ...

    async def update_pull_request(
        self, installation_id: int, owner: str, repo: str, number: int, *, title: str | None = None,
        body: str | None = None, state: str | None = None,
    ) -> None: ...

    async def request_reviewers(
        self, installation_id: int, owner: str, repo: str, number: int, reviewers: Sequence[str]
    ) -> None: ...

    async def create_check_run(
        self, installation_id: int, owner: str, repo: str, *, name: str, head_sha: str, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (), external_id: str | None = None,
    ) -> int:
        """Create a check run (completed with `conclusion`, or in progress when None); returns its id."""
        ...

    async def update_check_run(
        self, installation_id: int, owner: str, repo: str, check_run_id: int, *, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (),
    ) -> None: ...

    async def list_check_runs(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CheckRunInfo]:
        """The latest check runs on a commit (sha or branch)."""
        ...

    async def delete_branch(self, installation_id: int, owner: str, repo: str, branch: str) -> None:
        """Delete a branch; a branch that is already gone is not an error."""
        ...

    async def list_review_comments(
        self, installation_id: int, owner: str, repo: str, number: int
    ) -> list[ReviewComment]:
        """Every review comment of a pull request, oldest first."""
        ...

    # The review queue (bot.queue).

    async def list_commit_statuses(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CommitStatus]:
        """The latest commit status per context on a commit (the combined status)."""
        ...

    async def list_reviews(self, installation_id: int, owner: str, repo: str, number: int) -> list[PullReview]:
        """Every review of a pull request, oldest first."""
        ...

    async def list_pull_request_files(self, installation_id: int, owner: str, repo: str, number: int) -> list[str]:
        """The paths a pull request changes (renames: both names); GitHub lists at most 3,000."""
        ...

    async def get_branch_sha(self, installation_id: int, owner: str, repo: str, branch: str) -> str:
        """The commit a branch points at (`NotFound` when there is no such branch)."""
        ...

    async def compare_commits(self, installation_id: int, owner: str, repo: str, base: str, head: str) -> Comparison:
        """How `head` relates to `base` (`base...head`)."""
        ...

    async def update_branch(
        self, installation_id: int, owner: str, repo: str, number: int, expected_head_sha: str
    ) -> None:
        """Merge the base into a pull request's branch (GitHub's "Update branch"); 422 on a conflict, when it is up
        to date, or when the head is no longer `expected_head_sha`."""
        ...

    async def merge_pull(
        self, installation_id: int, owner: str, repo: str, number: int, *, sha: str, merge_method: str
    ) -> str:
        """Merge a pull request if its head is still `sha`; returns the merge commit (405/409 when it cannot)."""
        ...


class GitHubAPI(GitHubVerbs, Protocol):
    """What features type against: the verbs alone. The raw `request`/`paginate` are the transport's
    (`bot.github.transport`), used only inside `bot/github/`; a feature that needs a new call adds a verb."""

