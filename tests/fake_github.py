"""The one in-memory fake of `bot.github.GitHubAPI` for logic tests: it records every call and answers from state.

    gh = FakeGitHub(permissions={"ann": "write"})
    gh.set_file("octo", "hello", ".github/kickoff.yml", "agents: {claude: {}}")
    ...run the code under test with `gh`...
    assert gh.calls_to("comment") == [(1, "octo", "hello", 12, "…")]

State is plain attributes, so a test sets what it needs and reads what the code did. `fail(verb, error)` makes
the next call of a verb raise (e.g. `NotFound`, `RateLimited`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import TypeAdapter

from bot.github import (
    FileContent,
    InstallationToken,
    IssueComment,
    NotFound,
    Permission,
    Reaction,
    Repository,
    TokenScope,
)
from bot.github.auth import utcnow

if TYPE_CHECKING:
    from bot.github import GitHubAPI

T = TypeVar("T")
Params = Mapping[str, str | int | float | bool]

_ISSUE_LABELS = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<number>\d+)/labels$")


def blob_sha(text: str) -> str:
    """The sha git (and GitHub) gives a file with this text."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class FakeGitHub:
    """Implements `GitHubAPI` in memory. Every call is appended to `calls` as (verb, positional args)."""

    installations: dict[tuple[str, str], int] = field(default_factory=dict)
    """(owner, repo) → installation id; other repositories get `default_installation_id` (None: not installed)."""
    default_installation_id: int | None = 1
    repositories: dict[tuple[str, str], Repository] = field(default_factory=dict)
    files: dict[tuple[str, str, str, str | None], str] = field(default_factory=dict)
    """(owner, repo, path, ref) → text; ref None is the default branch. Use `set_file`."""
    permissions: dict[str, Permission] = field(default_factory=dict)
    """username → permission on every repository (unknown users: "none")."""
    repo_permissions: dict[tuple[str, str, str], Permission] = field(default_factory=dict)
    """(owner, repo, username) → permission, overriding `permissions`."""
    labels: defaultdict[tuple[str, str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    comments: dict[int, IssueComment] = field(default_factory=dict)
    comment_issue: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    reactions: list[tuple[str, str, int, Reaction]] = field(default_factory=list)
    responses: dict[tuple[str, str], Any] = field(default_factory=dict)
    """(METHOD, path) → JSON answered by `request`; a GET without an answer is `NotFound` (but `GET /app` answers
    from `bot_login`), a write answers None."""
    listings: dict[str, list[Any]] = field(default_factory=dict)
    """path → items yielded by `paginate`; an issue's `/labels` listing defaults to `labels`."""
    failures: defaultdict[str, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    run_tokens: list[InstallationToken] = field(default_factory=list)
    revoked: list[InstallationToken] = field(default_factory=list)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    bot_login: str = "kickoff[bot]"
    now: Callable[[], datetime] = utcnow
    _next_comment_id: int = 1000

    # Arranging.

    def set_file(self, owner: str, repo: str, path: str, text: str, ref: str | None = None) -> None:
        self.files[(owner, repo, path.strip("/"), ref)] = text

    def add_comment(
        self, owner: str, repo: str, issue_number: int, body: str, *, author: str = "octocat", author_type: str = "User"
    ) -> int:
        """Seed a comment someone else wrote (not recorded as a call)."""
        return self._store_comment(owner, repo, issue_number, body, author, author_type)

    def set_pull_request(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        head_repo: str | None = "",
        head_ref: str = "feature",
        base_ref: str = "main",
        author: str = "octocat",
    ) -> dict[str, Any]:
        """Answer `GET /repos/{owner}/{repo}/pulls/{number}`; `head_repo` "" is the repository itself, None a
        deleted fork, `someone/fork` a fork."""
        head = f"{owner}/{repo}" if head_repo == "" else head_repo
        pull = {
            "number": number,
            "state": "open",
            "user": {"login": author, "id": 1, "type": "User"},
            "head": {"ref": head_ref, "sha": "a" * 40, "repo": None if head is None else {"full_name": head}},
            "base": {"ref": base_ref, "sha": "b" * 40, "repo": {"full_name": f"{owner}/{repo}"}},
        }
        self.responses[("GET", f"/repos/{owner}/{repo}/pulls/{number}")] = pull
        return pull

    def fail(self, verb: str, error: BaseException) -> None:
        """Make the next call of `verb` raise `error` (queue several for several calls)."""
        self.failures[verb].append(error)

    # Asserting.

    def calls_to(self, verb: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == verb]

    def comments_on(self, owner: str, repo: str, issue_number: int) -> list[IssueComment]:
        return [c for cid, c in sorted(self.comments.items()) if self.comment_issue[cid] == (owner, repo, issue_number)]

    # GitHubAPI.

    async def get_installation_for_repo(self, owner: str, repo: str) -> int:
        self._record("get_installation_for_repo", owner, repo)
        found = self.installations.get((owner, repo), self.default_installation_id)
        if found is None:
            raise NotFound("the App is not installed here (FakeGitHub)", status=404)
        return found

    async def get_repository(self, installation_id: int, owner: str, repo: str) -> Repository:
        self._record("get_repository", installation_id, owner, repo)
        return self._repository(owner, repo)

    async def get_file(
        self, installation_id: int, owner: str, repo: str, path: str, ref: str | None = None
    ) -> FileContent | None:
        self._record("get_file", installation_id, owner, repo, path, ref)
        path = path.strip("/")
        text = self.files.get((owner, repo, path, ref))
        if text is None and ref in (None, self._repository(owner, repo).default_branch):
            text = self.files.get((owner, repo, path, None))
        return None if text is None else FileContent(text, blob_sha(text))

    async def comment(self, installation_id: int, owner: str, repo: str, issue_number: int, body: str) -> int:
        self._record("comment", installation_id, owner, repo, issue_number, body)
        return self._store_comment(owner, repo, issue_number, body, self.bot_login, "Bot")

    async def edit_comment(self, installation_id: int, owner: str, repo: str, comment_id: int, body: str) -> None:
        self._record("edit_comment", installation_id, owner, repo, comment_id, body)
        if comment_id not in self.comments:
            raise NotFound(f"no comment {comment_id} (FakeGitHub)", status=404)
        self.comments[comment_id] = replace(self.comments[comment_id], body=body, updated_at=self.now())

    async def add_reaction_to_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        self._record("add_reaction_to_comment", installation_id, owner, repo, comment_id, content)
        self.reactions.append((owner, repo, comment_id, content))

    async def add_labels(
        self, installation_id: int, owner: str, repo: str, issue_number: int, labels: Sequence[str]
    ) -> None:
        self._record("add_labels", installation_id, owner, repo, issue_number, list(labels))
        current = self.labels[(owner, repo, issue_number)]
        current.extend(label for label in labels if label not in current)

    async def remove_label(self, installation_id: int, owner: str, repo: str, issue_number: int, label: str) -> None:
        self._record("remove_label", installation_id, owner, repo, issue_number, label)
        current = self.labels[(owner, repo, issue_number)]
        if label in current:
            current.remove(label)

    async def get_collaborator_permission(
        self, installation_id: int, owner: str, repo: str, username: str
    ) -> Permission:
        self._record("get_collaborator_permission", installation_id, owner, repo, username)
        return self.repo_permissions.get((owner, repo, username), self.permissions.get(username, "none"))

    async def list_issue_comments(
        self, installation_id: int, owner: str, repo: str, issue_number: int
    ) -> list[IssueComment]:
        self._record("list_issue_comments", installation_id, owner, repo, issue_number)
        return self.comments_on(owner, repo, issue_number)

    async def mint_run_token(
        self, installation_id: int, repo: str, permissions: Mapping[str, str]
    ) -> InstallationToken:
        self._record("mint_run_token", installation_id, repo, dict(permissions))
        if not permissions:
            raise ValueError("a run token needs its permissions listed (least privilege)")
        scope = TokenScope.of([repo], permissions)
        token = InstallationToken(
            token=f"fake-run-token-{len(self.run_tokens) + 1}",
            expires_at=self.now() + timedelta(hours=1),
            permissions=dict(scope.permissions),
            repositories=scope.repositories,
        )
        self.run_tokens.append(token)
        return token

    async def revoke_token(self, token: InstallationToken) -> None:
        self._record("revoke_token", token)
        self.revoked.append(token)

    @overload
    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: type[T],
    ) -> T: ...

    @overload
    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: None = None,
    ) -> Any: ...

    async def request(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        model: type[T] | None = None,
    ) -> Any:
        method = method.upper()
        self._record("request", installation_id, method, path, dict(params or {}), json)
        if (method, path) in self.responses:
            data = self.responses[(method, path)]
        elif (method, path) == ("GET", "/app"):
            data = {"id": 1, "slug": self.bot_login.removesuffix("[bot]"), "name": self.bot_login}
        elif method == "GET":
            raise NotFound(f"FakeGitHub has no answer for GET {path}", status=404, method=method, path=path)
        else:
            data = None
        return data if model is None else TypeAdapter(model).validate_python(data)

    async def paginate(
        self,
        installation_id: int | None,
        path: str,
        *,
        model: type[T],
        params: Params | None = None,
        items_key: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[T]:
        self._record("paginate", installation_id, path, dict(params or {}), items_key)
        adapter = TypeAdapter(model)
        items = self.listings.get(path)
        labels = _ISSUE_LABELS.match(path)
        if items is None and labels is not None:
            key = (labels["owner"], labels["repo"], int(labels["number"]))
            items = [{"name": name} for name in self.labels.get(key, [])]
        for item in items or []:
            yield adapter.validate_python(item)

    # Plumbing.

    def _record(self, verb: str, *args: Any) -> None:
        self.calls.append((verb, args))
        if self.failures[verb]:
            raise self.failures[verb].pop(0)

    def _repository(self, owner: str, repo: str) -> Repository:
        found = self.repositories.get((owner, repo))
        if found is not None:
            return found
        return Repository(
            id=abs(hash((owner, repo))) % 10**9,
            owner=owner,
            name=repo,
            full_name=f"{owner}/{repo}",
            default_branch="main",
            private=False,
            fork=False,
            archived=False,
            html_url=f"https://github.com/{owner}/{repo}",
            clone_url=f"https://github.com/{owner}/{repo}.git",
        )

    def _store_comment(self, owner: str, repo: str, issue_number: int, body: str, author: str, author_type: str) -> int:
        self._next_comment_id += 1
        comment_id = self._next_comment_id
        now = self.now()
        self.comments[comment_id] = IssueComment(
            id=comment_id,
            body=body,
            author=author,
            author_type=author_type,
            created_at=now,
            updated_at=now,
            html_url=f"https://github.com/{owner}/{repo}/issues/{issue_number}#issuecomment-{comment_id}",
        )
        self.comment_issue[comment_id] = (owner, repo, issue_number)
        return comment_id


if TYPE_CHECKING:
    # mypy checks here that the fake keeps up with the Protocol.
    _: GitHubAPI = FakeGitHub()
