"""Issues and pull requests as issues: the issue itself, comments, reactions, labels."""

from __future__ import annotations

from collections.abc import Sequence

from bot.github import _wire
from bot.github.errors import NotFound
from bot.github.models import Issue, IssueComment, Reaction
from bot.github.transport import GitHubTransport, seg


class IssueVerbs(GitHubTransport):
    """Issues (and pull requests, which are issues): the issue, its comments, reactions and labels."""

    async def comment(self, installation_id: int, owner: str, repo: str, issue_number: int, body: str) -> int:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/comments"
        created = await self.request(installation_id, "POST", url, json={"body": body}, model=_wire.Id)
        return created.id

    async def edit_comment(self, installation_id: int, owner: str, repo: str, comment_id: int, body: str) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/comments/{comment_id}"
        await self.request(installation_id, "PATCH", url, json={"body": body})

    async def add_reaction_to_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/comments/{comment_id}/reactions"
        await self.request(installation_id, "POST", url, json={"content": content})

    async def add_labels(
        self, installation_id: int, owner: str, repo: str, issue_number: int, labels: Sequence[str]
    ) -> None:
        if not labels:
            return
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/labels"
        await self.request(installation_id, "POST", url, json={"labels": list(labels)})

    async def remove_label(self, installation_id: int, owner: str, repo: str, issue_number: int, label: str) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/labels/{seg(label)}"
        try:
            await self.request(installation_id, "DELETE", url)
        except NotFound:
            return

    async def add_reaction_to_issue(
        self, installation_id: int, owner: str, repo: str, issue_number: int, content: Reaction
    ) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/reactions"
        await self.request(installation_id, "POST", url, json={"content": content})

    async def get_issue(self, installation_id: int, owner: str, repo: str, number: int) -> Issue:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{number}"
        return (await self.request(installation_id, "GET", url, model=_wire.IssueData)).to_domain()

    async def list_labels(self, installation_id: int, owner: str, repo: str, issue_number: int) -> list[str]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/labels"
        return [label.name async for label in self.paginate(installation_id, url, model=_wire.LabelName)]

    async def list_issue_comments(
        self, installation_id: int, owner: str, repo: str, issue_number: int
    ) -> list[IssueComment]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/issues/{issue_number}/comments"
        return [c.to_domain() async for c in self.paginate(installation_id, url, model=_wire.Comment)]

