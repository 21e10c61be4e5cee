"""The one place Kickoff talks to GitHub: App auth, installation tokens, retries, pacing and error mapping.

Decision code types against `GitHubAPI`; `GitHubGateway` implements it over githubkit, and `tests/fake_github.py`
implements it in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, overload
from urllib.parse import quote

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.auth import BaseAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.config import get_config
from githubkit.exception import RequestError, RequestFailed, RequestTimeout
from githubkit.response import Response
from pydantic import TypeAdapter, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bot import __version__
from bot.github import _wire
from bot.github.auth import InstallationToken, TokenCache, TokenScope, parse_token_response, utcnow
from bot.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    error_for_status,
)
from bot.github.models import (
    CheckRunAction,
    CheckRunInfo,
    CommitStatus,
    Comparison,
    FileContent,
    IssueComment,
    Permission,
    PullRequestInfo,
    PullReview,
    Reaction,
    Repository,
    ReviewComment,
    WorkflowRun,
)
from bot.github.pacing import WRITE_LIMITS, Sleep, WritePacer
from bot.logs import register_secret

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Mapping[str, str | int | float | bool]

DEFAULT_BASE_URL = "https://api.github.com"
# Pinned rather than githubkit's newest (2026-03-10), which GitHub Enterprise Server does not know.
API_VERSION = "2022-11-28"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# GitHub: when a secondary limit names no wait, "wait for at least one minute before retrying".
SECONDARY_LIMIT_WAIT = 60.0


class GitHubAPI(Protocol):
    """The GitHub verbs decision code may use. Every method is a coroutine; errors are `bot.github.errors`."""

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

    # ---- Pull requests and checks (bot.prs)

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

    # ---- Review queue (bot.queue)

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

    # The escape hatch for verbs not written yet: any REST call, as an installation or (None) as the App,
    # answering the JSON body (None for 204), validated as `model` when one is given.
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

    def paginate(
        self,
        installation_id: int | None,
        path: str,
        *,
        model: type[T],
        params: Params | None = None,
        items_key: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[T]:
        """Every item of a listing, following `Link: rel="next"`; `items_key` for `{"total_count", key: [...]}`."""
        ...


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


class _Client(GitHub[Any]):
    """githubkit, minus its rate-limit parsing: the gateway classifies 403/429 itself, and githubkit's parser
    raises ValueError on an HTTP-date `Retry-After` or an out-of-range `x-ratelimit-reset`."""

    def _check_rate_limit(self, response: Response[Any]) -> None:
        return None


class _SharedTransport(httpx.AsyncBaseTransport):
    """Lets every short-lived githubkit client use the gateway's one connection pool without closing it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class _Transient(Exception):
    """A failure worth retrying; `error` is what the caller gets when the retries run out."""

    def __init__(self, error: GitHubError, delay: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class _TokenRejected(Exception):
    def __init__(self, error: Unauthorized) -> None:
        super().__init__(str(error))
        self.error = error


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def _seg(value: str | int) -> str:
    """One URL path segment, escaped (owner, repo, label and user names come from payloads)."""
    return quote(str(value), safe="")


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date); `Retry-After: 0` means now, not a minute."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


class GitHubGateway:
    """GitHub through githubkit for one App: implements `GitHubAPI`, plus `request`/`paginate` for new verbs.

    `sleep`, `now` (wall clock, for token expiry and `x-ratelimit-reset`) and `monotonic` (for pacing) are
    injectable so tests never wait. `rate_limit_remaining` holds the last `x-ratelimit-remaining` per installation.
    """

    def __init__(
        self,
        app_id: int,
        private_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_retry_wait: float = 60.0,
        write_limits: Sequence[tuple[int, float]] = WRITE_LIMITS,
        user_agent: str = f"kickoff-bot/{__version__}",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.app_id = app_id
        self.base_url = base_url.rstrip("/")
        self.rate_limit_remaining: dict[int, int] = {}
        self.request_counts: collections.Counter[tuple[str, int]] = collections.Counter()  # (method, status)
        self._sleep = sleep
        self._now = now
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._owns_transport = transport is None
        self._transport = transport or httpx.AsyncHTTPTransport(retries=0)
        self._config = get_config(
            base_url=self.base_url,
            user_agent=user_agent,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            async_transport=_SharedTransport(self._transport),
            cache_strategy=MemCacheStrategy(),  # this gateway's own, never githubkit's process-wide one
            http_cache=False,  # keep no response bodies; a sandbox or fake server then needs no ETag support
            auto_retry=False,  # retried here: githubkit would sleep 60 s on `Retry-After: 0`
        )
        self._app = self._client(AppAuthStrategy(app_id, private_key))
        self._tokens = TokenCache(self._mint, now=now)
        self._pacer = WritePacer(write_limits, clock=monotonic, sleep=sleep)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        app_id, private_key = settings.require_app_credentials()
        return cls(app_id, private_key, base_url=settings.github_api_url, **kwargs)

    def __repr__(self) -> str:
        return f"GitHubGateway(app_id={self.app_id}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def forget_installation(self, installation_id: int) -> None:
        """Drop an installation's cached tokens (it was deleted or suspended)."""
        self._tokens.forget_installation(installation_id)
        self.rate_limit_remaining.pop(installation_id, None)

    # Domain verbs.

    async def get_installation_for_repo(self, owner: str, repo: str) -> int:
        found = await self.request(None, "GET", f"/repos/{_seg(owner)}/{_seg(repo)}/installation", model=_wire.Id)
        return found.id

    async def get_repository(self, installation_id: int, owner: str, repo: str) -> Repository:
        found = await self.request(installation_id, "GET", f"/repos/{_seg(owner)}/{_seg(repo)}", model=_wire.Repo)
        return found.to_domain()

    async def get_file(
        self, installation_id: int, owner: str, repo: str, path: str, ref: str | None = None
    ) -> FileContent | None:
        base = f"/repos/{_seg(owner)}/{_seg(repo)}"
        url = f"{base}/contents/{quote(path.strip('/'), safe='/')}"
        try:
            response, data = await self._fetch(installation_id, "GET", url, params={"ref": ref} if ref else None)
        except NotFound:
            return None
        if not isinstance(data, dict):
            return None  # a directory listing
        content = self._parse(_wire.Content, data, response)
        if content.type != "file":
            return None  # a symlink or a submodule
        encoded, encoding = content.content, content.encoding
        if encoding == "none" or encoded is None:
            # Files over 1 MB come without content; the blob API serves them up to 100 MB.
            blob = await self.request(installation_id, "GET", f"{base}/git/blobs/{_seg(content.sha)}", model=_wire.Blob)
            encoded, encoding = blob.content, blob.encoding
        if encoding == "base64":
            try:
                raw = base64.b64decode(encoded)
            except (binascii.Error, ValueError):
                raise GitHubError("file content is not valid base64", method="GET", path=url) from None
            text = raw.decode("utf-8", errors="replace")
        else:
            text = encoded or ""
        return FileContent(text, content.sha)

    async def comment(self, installation_id: int, owner: str, repo: str, issue_number: int, body: str) -> int:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/{issue_number}/comments"
        created = await self.request(installation_id, "POST", url, json={"body": body}, model=_wire.Id)
        return created.id

    async def edit_comment(self, installation_id: int, owner: str, repo: str, comment_id: int, body: str) -> None:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/comments/{comment_id}"
        await self.request(installation_id, "PATCH", url, json={"body": body})

    async def add_reaction_to_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/comments/{comment_id}/reactions"
        await self.request(installation_id, "POST", url, json={"content": content})

    async def add_labels(
        self, installation_id: int, owner: str, repo: str, issue_number: int, labels: Sequence[str]
    ) -> None:
        if not labels:
            return
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/{issue_number}/labels"
        await self.request(installation_id, "POST", url, json={"labels": list(labels)})

    async def remove_label(self, installation_id: int, owner: str, repo: str, issue_number: int, label: str) -> None:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/{issue_number}/labels/{_seg(label)}"
        try:
            await self.request(installation_id, "DELETE", url)
        except NotFound:
            return

    async def get_collaborator_permission(
        self, installation_id: int, owner: str, repo: str, username: str
    ) -> Permission:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/collaborators/{_seg(username)}/permission"
        try:
            found = await self.request(installation_id, "GET", url, model=_wire.CollaboratorPermission)
        except NotFound:
            return "none"
        return found.effective()

    async def list_issue_comments(
        self, installation_id: int, owner: str, repo: str, issue_number: int
    ) -> list[IssueComment]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/issues/{issue_number}/comments"
        return [c.to_domain() async for c in self.paginate(installation_id, url, model=_wire.Comment)]

    async def mint_run_token(
        self, installation_id: int, repo: str, permissions: Mapping[str, str]
    ) -> InstallationToken:
        if not permissions:
            raise ValueError("a run token needs its permissions listed (least privilege)")
        return await self._mint(installation_id, TokenScope.of([repo], permissions))

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
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/actions/workflows/{_seg(workflow)}/dispatches"
        body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs)}
        if return_run_details:
            body["return_run_details"] = True
        response, data = await self._fetch(installation_id, "POST", url, json=body)
        if data is None:
            return None  # 204: a server that does not return run details
        return self._parse(_wire.DispatchedRun, data, response).workflow_run_id

    async def get_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> WorkflowRun:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/actions/runs/{run_id}"
        found = await self.request(installation_id, "GET", url, model=_wire.Run)
        return found.to_domain()

    async def list_workflow_runs(
        self, installation_id: int, owner: str, repo: str, workflow: str, created_since: datetime
    ) -> list[WorkflowRun]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/actions/workflows/{_seg(workflow)}/runs"
        params: dict[str, str | int] = {"event": "workflow_dispatch", "per_page": 100,
                  "created": f">={created_since.strftime('%Y-%m-%dT%H:%M:%SZ')}"}
        found = await self.request(installation_id, "GET", url, params=params, model=_wire.Runs)
        return [run.to_domain() for run in found.workflow_runs]

    async def cancel_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> None:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/actions/runs/{run_id}/cancel"
        try:
            await self.request(installation_id, "POST", url)
        except Conflict:
            return  # "Cannot cancel a workflow run that is completed."

    async def revoke_token(self, token: InstallationToken) -> None:
        client = self._client(TokenAuthStrategy(token.token))
        try:
            await self._send(client, None, "DELETE", "/installation/token", params=None, json=None)
        except (Unauthorized, NotFound):
            return  # expired, already revoked, or a server without the endpoint: the token dies within the hour

    # Pull requests and checks (bot.prs).

    async def open_pull_request(
        self, installation_id: int, owner: str, repo: str, *, head: str, base: str, title: str, body: str,
        draft: bool = False,
    ) -> PullRequestInfo:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls"
        payload = {"head": head, "base": base, "title": title, "body": body, "draft": draft}
        created = await self.request(installation_id, "POST", url, json=payload, model=_wire.Pull)
        return created.to_domain()

    async def get_pull_request(self, installation_id: int, owner: str, repo: str, number: int) -> PullRequestInfo:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}"
        return (await self.request(installation_id, "GET", url, model=_wire.Pull)).to_domain()

    async def find_pull_requests(
        self, installation_id: int, owner: str, repo: str, *, head: str, state: str = "open"
    ) -> list[PullRequestInfo]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls"
        params = {"head": f"{owner}:{head}", "state": state}
        return [p.to_domain() async for p in self.paginate(installation_id, url, model=_wire.Pull, params=params)]

    async def update_pull_request(
        self, installation_id: int, owner: str, repo: str, number: int, *, title: str | None = None,
        body: str | None = None, state: str | None = None,
    ) -> None:
        changes = {k: v for k, v in (("title", title), ("body", body), ("state", state)) if v is not None}
        if changes:
            url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}"
            await self.request(installation_id, "PATCH", url, json=changes)

    async def request_reviewers(
        self, installation_id: int, owner: str, repo: str, number: int, reviewers: Sequence[str]
    ) -> None:
        if reviewers:
            url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/requested_reviewers"
            await self.request(installation_id, "POST", url, json={"reviewers": list(reviewers)})

    async def create_check_run(
        self, installation_id: int, owner: str, repo: str, *, name: str, head_sha: str, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (), external_id: str | None = None,
    ) -> int:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/check-runs"
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
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/check-runs/{check_run_id}"
        await self.request(installation_id, "PATCH", url, json=_check_fields(conclusion, title, summary, actions))

    async def list_check_runs(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CheckRunInfo]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/commits/{_seg(ref)}/check-runs"
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
        await self.request(installation_id, "DELETE", f"/repos/{_seg(owner)}/{_seg(repo)}/git/refs/{ref}")

    async def list_review_comments(
        self, installation_id: int, owner: str, repo: str, number: int
    ) -> list[ReviewComment]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/comments"
        return [c.to_domain() async for c in self.paginate(installation_id, url, model=_wire.PullComment)]

    # ---- Review queue (bot.queue)

    async def list_commit_statuses(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CommitStatus]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/commits/{_seg(ref)}/status"
        found = self.paginate(installation_id, url, model=_wire.Status, items_key="statuses")
        return [status.to_domain() async for status in found]

    async def list_reviews(self, installation_id: int, owner: str, repo: str, number: int) -> list[PullReview]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/reviews"
        return [review.to_domain() async for review in self.paginate(installation_id, url, model=_wire.Review)]

    async def list_pull_request_files(self, installation_id: int, owner: str, repo: str, number: int) -> list[str]:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/files"
        paths: list[str] = []
        async for changed in self.paginate(installation_id, url, model=_wire.PullFile):
            paths.append(changed.filename)
            if changed.previous_filename:
                paths.append(changed.previous_filename)
        return paths

    async def get_branch_sha(self, installation_id: int, owner: str, repo: str, branch: str) -> str:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/git/ref/{quote('heads/' + branch, safe='/')}"
        found = await self.request(installation_id, "GET", url, model=_wire.GitRef)
        return found.object.sha

    async def compare_commits(self, installation_id: int, owner: str, repo: str, base: str, head: str) -> Comparison:
        # One commit per page: only the status and the counts are read, not the commit list.
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/compare/{_seg(base + '...' + head)}"
        found = await self.request(installation_id, "GET", url, params={"per_page": 1}, model=_wire.Compare)
        return found.to_domain()

    async def update_branch(
        self, installation_id: int, owner: str, repo: str, number: int, expected_head_sha: str
    ) -> None:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/update-branch"
        await self.request(installation_id, "PUT", url, json={"expected_head_sha": expected_head_sha})

    async def merge_pull(
        self, installation_id: int, owner: str, repo: str, number: int, *, sha: str, merge_method: str
    ) -> str:
        url = f"/repos/{_seg(owner)}/{_seg(repo)}/pulls/{number}/merge"
        body = {"sha": sha, "merge_method": merge_method}
        merged = await self.request(installation_id, "PUT", url, json=body, model=_wire.MergeResult)
        return merged.sha

    # The escape hatch for verbs not written yet.

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
        """Any REST call: as the installation, or as the App when `installation_id` is None.

        Returns the JSON body (None for 204) validated as `model` when given.
        """
        response, data = await self._fetch(installation_id, method, path, params=params, json=json)
        return data if model is None else self._parse(model, data, response)

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
        url = path
        query: Params | None = {**(params or {}), "per_page": per_page}
        while True:
            response, data = await self._fetch(installation_id, "GET", url, params=query)
            items = data.get(items_key) if items_key is not None and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise GitHubError(
                    "expected a list in the response", status=response.status_code, method="GET", path=_path(response)
                )
            for item in items:
                yield self._parse(model, item, response)
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            url, query = self._same_origin(next_url), None

    # Plumbing.

    def _client(self, auth: BaseAuthStrategy) -> _Client:
        return _Client(auth, config=self._config)

    def _same_origin(self, link: str) -> str:
        """Follow a pagination link only to where the token is meant to go."""
        url, base = httpx.URL(link), self._config.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.path.startswith(
            base.path
        ):
            raise GitHubError(f"refusing to follow a pagination link to another origin ({url.host})")
        return link

    async def _mint(self, installation_id: int, scope: TokenScope) -> InstallationToken:
        url = f"/app/installations/{installation_id}/access_tokens"
        response = await self._call(None, "POST", url, params=None, json=scope.request_body())
        try:
            token = parse_token_response(response.json())
        except ValueError as exc:
            raise GitHubError(str(exc), status=response.status_code, method="POST", path=url) from None
        register_secret(token.token)  # redacted from every later log line, wherever it turns up
        log.info("minted an installation token for installation %s (expires %s)", installation_id, token.expires_at)
        return token

    async def _fetch(
        self,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> tuple[httpx.Response, Any]:
        response = await self._call(installation_id, method, path, params=params, json=json)
        if response.status_code == 204 or not response.content:
            return response, None
        try:
            return response, response.json()
        except ValueError:
            raise GitHubError(
                "GitHub answered with a body that is not JSON",
                status=response.status_code,
                method=method.upper(),
                path=_path(response),
            ) from None

    def _parse(self, model: type[T], data: Any, response: httpx.Response) -> T:
        try:
            parsed: T = _adapter(model).validate_python(data)
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()[:5])
            raise GitHubError(
                f"GitHub answered with an unexpected shape (at {where})",
                status=response.status_code,
                method=response.request.method,
                path=_path(response),
            ) from None
        return parsed

    async def _call(
        self, installation_id: int | None, method: str, path: str, *, params: Params | None, json: Any
    ) -> httpx.Response:
        """One logical request: as the App (JWT) or as an installation, re-minting once when a token is refused."""
        if installation_id is None:
            return await self._send(self._app, None, method, path, params=params, json=json)
        scope = TokenScope()
        refreshed = False
        while True:
            token = await self._tokens.get(installation_id, scope)
            client = self._client(TokenAuthStrategy(token.token))
            try:
                return await self._send(client, installation_id, method, path, params=params, json=json)
            except _TokenRejected as rejected:
                self._tokens.invalidate(installation_id, scope, token)
                if refreshed:
                    raise rejected.error from None
                log.warning("GitHub refused the token of installation %s; minting a new one", installation_id)
                refreshed = True

    async def _send(
        self,
        client: _Client,
        installation_id: int | None,
        method: str,
        path: str,
        *,
        params: Params | None,
        json: Any,
    ) -> httpx.Response:
        method = method.upper()
        paced = installation_id is not None and method in WRITE_METHODS
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._retry_wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if paced and installation_id is not None:
                        await self._pacer.acquire(installation_id)
                    response = await self._attempt(client, installation_id, method, path, params, json)
        except _Transient as transient:
            raise transient.error from transient.__cause__
        return response

    async def _attempt(
        self,
        client: _Client,
        installation_id: int | None,
        method: str,
        path: str,
        params: Params | None,
        json: Any,
    ) -> httpx.Response:
        where: dict[str, Any] = {"method": method, "path": httpx.URL(path).path}
        try:
            response = (
                await client.arequest(
                    method, path, params=params, json=json, headers={"X-GitHub-Api-Version": API_VERSION}
                )
            ).raw_response
        except RequestFailed as exc:
            response = exc.response.raw_response
        except RequestTimeout as exc:
            raise _Transient(GitHubUnavailable(f"timed out ({type(exc.exc).__name__})", **where), None) from exc.exc
        except RequestError as exc:
            inner = exc.exc
            if isinstance(inner, httpx.TransportError):
                error = GitHubUnavailable(f"network error ({type(inner).__name__})", **where)
                raise _Transient(error, None) from inner
            raise GitHubError(f"request could not be sent ({type(inner).__name__})", **where) from inner
        self._observe(installation_id, response)
        if response.status_code < 400:
            return response
        raise self._failure(installation_id, response)

    def _observe(self, installation_id: int | None, response: httpx.Response) -> None:
        self.request_counts[(response.request.method, response.status_code)] += 1
        remaining = _int_header(response.headers, "x-ratelimit-remaining")
        if installation_id is not None and remaining is not None:
            self.rate_limit_remaining[installation_id] = remaining

    def _failure(self, installation_id: int | None, response: httpx.Response) -> Exception:
        """Classify an error response: retry (`_Transient`), re-mint (`_TokenRejected`), or our final exception."""
        status, headers = response.status_code, response.headers
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        message = body.get("message")
        if not isinstance(message, str) or not message:
            message = response.reason_phrase or f"HTTP {status}"
        errors = body.get("errors")
        docs = body.get("documentation_url")
        common: dict[str, Any] = {
            "status": status,
            "method": response.request.method,
            "path": _path(response),
            "documentation_url": docs if isinstance(docs, str) else None,
            "request_id": headers.get("x-github-request-id"),
        }
        if status == 401 and installation_id is not None:
            return _TokenRejected(Unauthorized(message, **common))
        if status == 429 or (status == 403 and self._is_rate_limit(headers, message)):
            delay = self._rate_limit_delay(headers)
            limited = RateLimited(message, retry_after=delay, **common)
            # A wait longer than a worker should hold (a primary limit resets hourly) goes back to the caller.
            return limited if delay > self._max_retry_wait else _Transient(limited, delay)
        if status >= 500:
            asked = _retry_after(headers, self._now())
            unavailable = GitHubUnavailable(message, **common)
            return _Transient(unavailable, None if asked is None else min(asked, self._max_retry_wait))
        return error_for_status(message=message, errors=errors if isinstance(errors, list) else None, **common)

    @staticmethod
    def _is_rate_limit(headers: httpx.Headers, message: str) -> bool:
        # "abuse detection" is how older GitHub Enterprise Server versions word a secondary limit.
        text = message.lower()
        return (
            "rate limit" in text
            or "abuse detection" in text
            or "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
        )

    def _rate_limit_delay(self, headers: httpx.Headers) -> float:
        now = self._now()
        retry_after = _retry_after(headers, now)
        if retry_after is not None:
            return retry_after
        reset = _int_header(headers, "x-ratelimit-reset")
        if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            # One second past the reset, as octokit's throttling plugin does, for clock skew.
            return max(0.0, math.ceil(reset - now.timestamp())) + 1.0
        return SECONDARY_LIMIT_WAIT

    def _retry_wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Transient) and failure.delay is not None:
            return failure.delay
        return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (state.attempt_number - 1)))

    def _log_retry(self, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "GitHub %s; retrying in %.1f s (attempt %d of %d)",
            failure.error if isinstance(failure, _Transient) else failure,
            wait,
            state.attempt_number + 1,
            self._max_attempts,
        )


def _path(response: httpx.Response) -> str:
    return response.request.url.path


if TYPE_CHECKING:

    def _implements_the_protocol(gateway: GitHubGateway) -> GitHubAPI:
        return gateway
