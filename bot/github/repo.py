"""One repository of one installation: the repository verbs of `GitHubVerbs` without the (installation, owner,
repo) triple, so a feature that works on one repository names it once.

    repo = github.for_repo(installation_id, "octo/hello")
    issue = await repo.get_issue(12)
    await repo.add_reaction_to_comment(comment_id, "eyes")

It only binds arguments: every call goes to the verb of the gateway (or fake) it came from, so a fake records it
under that verb's name, with the triple.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.github.auth import InstallationToken
from bot.github.models import (
    CheckRunAction,
    CheckRunInfo,
    CommitStatus,
    Comparison,
    FileContent,
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
    from bot.github.protocol import GitHubVerbs


@dataclass(frozen=True, slots=True)
class RepoGateway:
    """`GitHubVerbs` bound to one installation and repository; make one with `github.for_repo(...)`."""

    github: GitHubVerbs
    installation_id: int
    owner: str
    name: str

    @classmethod
    def of(cls, github: GitHubVerbs, installation_id: int, full_name: str) -> RepoGateway:
        owner, slash, name = full_name.partition("/")
        if not owner or not slash or not name or "/" in name:
            raise ValueError(f"a repository is named owner/name, got {full_name!r}")
        return cls(github, installation_id, owner, name)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def _where(self) -> tuple[int, str, str]:
        return self.installation_id, self.owner, self.name

    async def get_repository(self) -> Repository:
        return await self.github.get_repository(*self._where)

    async def get_file(self, path: str, ref: str | None = None) -> FileContent | None:
        return await self.github.get_file(*self._where, path, ref)

    async def comment(self, issue_number: int, body: str) -> int:
        return await self.github.comment(*self._where, issue_number, body)

    async def edit_comment(self, comment_id: int, body: str) -> None:
        await self.github.edit_comment(*self._where, comment_id, body)

    async def add_reaction_to_comment(self, comment_id: int, content: Reaction) -> None:
        await self.github.add_reaction_to_comment(*self._where, comment_id, content)

    async def add_labels(self, issue_number: int, labels: Sequence[str]) -> None:
        await self.github.add_labels(*self._where, issue_number, labels)

    async def remove_label(self, issue_number: int, label: str) -> None:
        await self.github.remove_label(*self._where, issue_number, label)

    async def get_issue(self, number: int) -> Issue:
        return await self.github.get_issue(*self._where, number)

    async def list_labels(self, issue_number: int) -> list[str]:
        return await self.github.list_labels(*self._where, issue_number)

    async def add_reaction_to_issue(self, issue_number: int, content: Reaction) -> None:
        await self.github.add_reaction_to_issue(*self._where, issue_number, content)

    async def add_reaction_to_review_comment(self, comment_id: int, content: Reaction) -> None:
        await self.github.add_reaction_to_review_comment(*self._where, comment_id, content)

    async def get_collaborator_permission(self, username: str) -> Permission:
        return await self.github.get_collaborator_permission(*self._where, username)

    async def list_issue_comments(self, issue_number: int) -> list[IssueComment]:
        return await self.github.list_issue_comments(*self._where, issue_number)

    async def mint_run_token(self, permissions: Mapping[str, str]) -> InstallationToken:
        return await self.github.mint_run_token(self.installation_id, self.name, permissions)

    async def dispatch_workflow(
        self, workflow: str, ref: str, inputs: Mapping[str, str], return_run_details: bool = True
    ) -> int | None:
        return await self.github.dispatch_workflow(*self._where, workflow, ref, inputs, return_run_details)

    async def get_workflow_run(self, run_id: int) -> WorkflowRun:
        return await self.github.get_workflow_run(*self._where, run_id)

    async def list_workflow_runs(self, workflow: str, created_since: datetime) -> list[WorkflowRun]:
        return await self.github.list_workflow_runs(*self._where, workflow, created_since)

    async def cancel_workflow_run(self, run_id: int) -> None:
        await self.github.cancel_workflow_run(*self._where, run_id)

    async def open_pull_request(
        self, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestInfo:
        return await self.github.open_pull_request(
            *self._where, head=head, base=base, title=title, body=body, draft=draft
        )

    async def get_pull_request(self, number: int) -> PullRequestInfo:
        return await self.github.get_pull_request(*self._where, number)

    async def find_pull_requests(self, *, head: str, state: str = 'open') -> list[PullRequestInfo]:
        return await self.github.find_pull_requests(*self._where, head=head, state=state)

    async def update_pull_request(
        self, number: int, *, title: str | None = None, body: str | None = None, state: str | None = None
    ) -> None:
        await self.github.update_pull_request(*self._where, number, title=title, body=body, state=state)

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        await self.github.request_reviewers(*self._where, number, reviewers)

    async def create_check_run(
        self, *, name: str, head_sha: str, conclusion: str | None, title: str, summary: str,
        actions: Sequence[CheckRunAction] = (), external_id: str | None = None,
    ) -> int:
        return await self.github.create_check_run(
            *self._where, name=name, head_sha=head_sha, conclusion=conclusion, title=title, summary=summary,
            actions=actions, external_id=external_id,
        )

    async def update_check_run(
        self, check_run_id: int, *, conclusion: str | None, title: str, summary: str,
        actions: Sequence[CheckRunAction] = (),
    ) -> None:
        await self.github.update_check_run(
            *self._where, check_run_id, conclusion=conclusion, title=title, summary=summary, actions=actions
        )

    async def list_check_runs(self, ref: str) -> list[CheckRunInfo]:
        return await self.github.list_check_runs(*self._where, ref)

    async def delete_branch(self, branch: str) -> None:
        await self.github.delete_branch(*self._where, branch)

    async def list_review_comments(self, number: int) -> list[ReviewComment]:
        return await self.github.list_review_comments(*self._where, number)

    async def list_commit_statuses(self, ref: str) -> list[CommitStatus]:
        return await self.github.list_commit_statuses(*self._where, ref)

    async def list_reviews(self, number: int) -> list[PullReview]:
        return await self.github.list_reviews(*self._where, number)

    async def list_pull_request_files(self, number: int) -> list[str]:
        return await self.github.list_pull_request_files(*self._where, number)

    async def get_branch_sha(self, branch: str) -> str:
        return await self.github.get_branch_sha(*self._where, branch)

    async def compare_commits(self, base: str, head: str) -> Comparison:
        return await self.github.compare_commits(*self._where, base, head)

    async def update_branch(self, number: int, expected_head_sha: str) -> None:
        await self.github.update_branch(*self._where, number, expected_head_sha)

    async def merge_pull(self, number: int, *, sha: str, merge_method: str) -> str:
        return await self.github.merge_pull(*self._where, number, sha=sha, merge_method=merge_method)
