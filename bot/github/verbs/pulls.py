"""Pull requests, their checks, branches and reviews: what `bot.prs` and the review queue (`bot.queue`) do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from bot.github import _wire
from bot.github.errors import NotFound, ValidationFailed
from bot.github.models import (
    CheckRunAction,
    CheckRunInfo,
    CommitStatus,
    Comparison,
    PullRequestInfo,
    PullReview,
    Reaction,
    ReviewComment,
)
from bot.github.transport import GitHubTransport, seg


def _check_fields(
    conclusion: str | None, title: str, summary: str, actions: Sequence[CheckRunAction]
) -> dict[str, Any]:
    """A check run's state, output and buttons, as GitHub takes them (texts within its 65,535-character limit)."""
    fields: dict[str, Any] = {
        "output": {"title": title[:1000], "summary": summary[:65_000]},
        "actions": [{"label": a.label, "description": a.description, "identifier": a.identifier} for a in actions],
    }
    if conclusion is None:
        fields["status"] = "in_progress"
    else:
        fields["status"] = "completed"
        fields["conclusion"] = conclusion
    return fields


class PullVerbs(GitHubTransport):
    """Pull requests, check runs, branches, reviews and statuses."""

    async def open_pull_request(
        self, installation_id: int, owner: str, repo: str, *, head: str, base: str, title: str, body: str,
        draft: bool = False,
    ) -> PullRequestInfo:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls"
        payload = {"head": head, "base": base, "title": title, "body": body, "draft": draft}
        created = await self.request(installation_id, "POST", url, json=payload, model=_wire.Pull)
        return created.to_domain()

    async def get_pull_request(self, installation_id: int, owner: str, repo: str, number: int) -> PullRequestInfo:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}"
        return (await self.request(installation_id, "GET", url, model=_wire.Pull)).to_domain()

    async def find_pull_requests(
        self, installation_id: int, owner: str, repo: str, *, head: str, state: str = "open"
    ) -> list[PullRequestInfo]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls"
        params = {"head": f"{owner}:{head}", "state": state}
        return [p.to_domain() async for p in self.paginate(installation_id, url, model=_wire.Pull, params=params)]

    async def update_pull_request(
        self, installation_id: int, owner: str, repo: str, number: int, *, title: str | None = None,
        body: str | None = None, state: str | None = None,
    ) -> None:
        changes = {k: v for k, v in (("title", title), ("body", body), ("state", state)) if v is not None}
        if changes:
            url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}"
            await self.request(installation_id, "PATCH", url, json=changes)

    async def request_reviewers(
        self, installation_id: int, owner: str, repo: str, number: int, reviewers: Sequence[str]
    ) -> None:
        if reviewers:
            url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/requested_reviewers"
            await self.request(installation_id, "POST", url, json={"reviewers": list(reviewers)})

    async def create_check_run(
        self, installation_id: int, owner: str, repo: str, *, name: str, head_sha: str, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (), external_id: str | None = None,
    ) -> int:
        url = f"/repos/{seg(owner)}/{seg(repo)}/check-runs"
        body: dict[str, Any] = {"name": name, "head_sha": head_sha}
        body.update(_check_fields(conclusion, title, summary, actions))
        if external_id is not None:
            body["external_id"] = external_id
        created = await self.request(installation_id, "POST", url, json=body, model=_wire.Id)
        return created.id

    async def update_check_run(
        self, installation_id: int, owner: str, repo: str, check_run_id: int, *, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (),
    ) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/check-runs/{check_run_id}"
        await self.request(installation_id, "PATCH", url, json=_check_fields(conclusion, title, summary, actions))

    async def list_check_runs(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CheckRunInfo]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/commits/{seg(ref)}/check-runs"
        runs = self.paginate(installation_id, url, model=_wire.CheckRun, items_key="check_runs")
        return [run.to_domain() async for run in runs]

    async def delete_branch(self, installation_id: int, owner: str, repo: str, branch: str) -> None:
        try:
            await self._delete_ref(installation_id, owner, repo, "heads/" + quote(branch, safe="/"))
        except NotFound:
            return
        except ValidationFailed as exc:
            if "does not exist" not in str(exc):
                raise

    async def _delete_ref(self, installation_id: int, owner: str, repo: str, ref: str) -> None:
        await self.request(installation_id, "DELETE", f"/repos/{seg(owner)}/{seg(repo)}/git/refs/{ref}")

    async def list_review_comments(
        self, installation_id: int, owner: str, repo: str, number: int
    ) -> list[ReviewComment]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/comments"
        return [c.to_domain() async for c in self.paginate(installation_id, url, model=_wire.PullComment)]

    async def add_reaction_to_review_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/comments/{comment_id}/reactions"
        await self.request(installation_id, "POST", url, json={"content": content})

    # The review queue (bot.queue).

    async def list_commit_statuses(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CommitStatus]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/commits/{seg(ref)}/status"
        found = self.paginate(installation_id, url, model=_wire.Status, items_key="statuses")
        return [status.to_domain() async for status in found]

    async def list_reviews(self, installation_id: int, owner: str, repo: str, number: int) -> list[PullReview]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/reviews"
        return [review.to_domain() async for review in self.paginate(installation_id, url, model=_wire.Review)]

    async def list_pull_request_files(self, installation_id: int, owner: str, repo: str, number: int) -> list[str]:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/files"
        paths: list[str] = []
        async for changed in self.paginate(installation_id, url, model=_wire.PullFile):
            paths.append(changed.filename)
            if changed.previous_filename:
                paths.append(changed.previous_filename)
        return paths

    async def get_branch_sha(self, installation_id: int, owner: str, repo: str, branch: str) -> str:
        url = f"/repos/{seg(owner)}/{seg(repo)}/git/ref/{quote('heads/' + branch, safe='/')}"
        found = await self.request(installation_id, "GET", url, model=_wire.GitRef)
        return found.object.sha

    async def compare_commits(self, installation_id: int, owner: str, repo: str, base: str, head: str) -> Comparison:
        # One commit per page: only the status and the counts are read, not the commit list.
        url = f"/repos/{seg(owner)}/{seg(repo)}/compare/{seg(base + '...' + head)}"
        found = await self.request(installation_id, "GET", url, params={"per_page": 1}, model=_wire.Compare)
        return found.to_domain()

    async def update_branch(
        self, installation_id: int, owner: str, repo: str, number: int, expected_head_sha: str
    ) -> None:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/update-branch"
        await self.request(installation_id, "PUT", url, json={"expected_head_sha": expected_head_sha})

    async def merge_pull(
        self, installation_id: int, owner: str, repo: str, number: int, *, sha: str, merge_method: str
    ) -> str:
        url = f"/repos/{seg(owner)}/{seg(repo)}/pulls/{number}/merge"
        body = {"sha": sha, "merge_method": merge_method}
        merged = await self.request(installation_id, "PUT", url, json=body, model=_wire.MergeResult)
        return merged.sha
