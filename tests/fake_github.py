"""The one in-memory fake of `bot.github.GitHubAPI` for logic tests: it records every call and answers from state.

    gh = FakeGitHub(permissions={"ann": "write"})
    gh.set_file("octo", "hello", ".github/kickoff.yml", "agents: {claude: {}}")
    ...run the code under test with `gh`...
    assert gh.calls_to("comment") == [(1, "octo", "hello", 12, "…")]

It implements the Protocol's verbs and nothing else: no raw `request`/`paginate` and no URL parsing (those are
the real gateway's transport, `bot.github.transport`, tested over mocked HTTP in tests/github). State is plain
typed attributes holding the gateway's own models (`Issue`, `PullRequestInfo`, ...), seeded directly or through the
`set_*`/`add_*` helpers, so a test sets what it needs and reads what the code did. `fail(verb, error)` makes the
next call of a verb raise (e.g. `NotFound`, `RateLimited`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.github import (
    AppIdentity,
    CheckRunAction,
    CheckRunInfo,
    Conflict,
    FileContent,
    GitHubError,
    GitHubUser,
    HookDelivery,
    InstallationToken,
    Issue,
    IssueComment,
    NotFound,
    Permission,
    PullRequestInfo,
    Reaction,
    RepoGateway,
    Repository,
    ReviewComment,
    TokenScope,
    ValidationFailed,
    WorkflowRun,
)
from bot.github.auth import utcnow
from bot.github.models import CommitStatus, Comparison, PullReview

if TYPE_CHECKING:
    from bot.github import GitHubAPI

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
    """(owner, repo, comment id, content): reactions to issue comments."""
    issue_reactions: list[tuple[str, str, int, Reaction]] = field(default_factory=list)
    """(owner, repo, issue number, content): reactions to an issue or pull request itself."""
    review_comment_reactions: list[tuple[str, str, int, Reaction]] = field(default_factory=list)
    issues: dict[tuple[str, str, int], Issue] = field(default_factory=dict)
    """(owner, repo, number) → what `get_issue` answers; use `set_issue`."""
    users: dict[str, GitHubUser] = field(default_factory=dict)
    """login → what `get_user` answers (other logins: `NotFound`)."""
    hook_deliveries: list[HookDelivery] = field(default_factory=list)
    """The App's delivery attempts, newest first; use `add_hook_delivery`."""
    redelivered: list[int] = field(default_factory=list)
    """The attempt ids `redeliver_hook_delivery` was asked to send again."""
    app_id: int = 1
    app_name: str = "Kickoff"
    """The App's display name (`GET /app`'s `name`); its bot login is `bot_login`."""
    failures: defaultdict[str, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    run_tokens: list[InstallationToken] = field(default_factory=list)
    revoked: list[InstallationToken] = field(default_factory=list)
    workflow_runs: dict[tuple[str, str, int], WorkflowRun] = field(default_factory=dict)
    """(owner, repo, run id) → a workflow run; `dispatch_workflow` adds one (queued), tests move it."""
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    """Each accepted dispatch: owner, repo, workflow, ref, inputs."""
    returns_run_details: bool = True
    """False: an older GHES, which answers 400 to `return_run_details` and 204 without it."""
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    bot_login: str = "kickoff[bot]"
    now: Callable[[], datetime] = utcnow
    _next_comment_id: int = 1000
    # Pull requests and checks (bot.prs).
    pulls: dict[tuple[str, str, int], PullRequestInfo] = field(default_factory=dict)
    """(owner, repo, number) → pull request; `open_pull_request` adds, `update_pull_request` changes."""
    branch_shas: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(owner, repo, branch) → head sha for pull requests opened from it (default: derived from the name)."""
    deleted_branches: list[tuple[str, str, str]] = field(default_factory=list)
    reviewers: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """id → {"owner", "repo", "name", "head_sha", "conclusion", "title", "summary", "actions", "external_id"}."""
    review_comments: dict[tuple[str, str, int], list[ReviewComment]] = field(default_factory=dict)
    foreign_check_runs: dict[tuple[str, str, str], list[CheckRunInfo]] = field(default_factory=dict)
    """(owner, repo, sha) → check runs other Apps (CI) made, listed with Kickoff's own."""
    pull_bodies: dict[tuple[str, str, int], str] = field(default_factory=dict)
    _next_number: int = 100
    _next_check_run_id: int = 5000
    _check_runs_by_commit: dict[tuple[str, str, str], list[int]] = field(default_factory=dict, repr=False)
    """(owner, repo, head sha) → its check runs' ids, oldest first: listing one commit's runs does not scan them all
    (a queue of thousands lists every entry's runs on each reconcile)."""
    # The review queue (bot.queue); base branches' shas are `branch_shas`.
    commit_statuses: dict[tuple[str, str, str], list[CommitStatus]] = field(default_factory=dict)
    """(owner, repo, sha) → the latest status per context."""
    pull_reviews: dict[tuple[str, str, int], list[PullReview]] = field(default_factory=dict)
    pull_files: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    contains: set[tuple[str, str, str, str]] = field(default_factory=set)
    """(owner, repo, head, base): commit `head` contains commit `base` (besides head == base)."""
    conflicting: set[tuple[str, str, int]] = field(default_factory=set)
    """(owner, repo, number): `update_branch` answers 422 merge conflict."""

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
    ) -> PullRequestInfo:
        """Seed an open pull request someone opened (head sha "a" * 40), answered by `get_pull_request` (and by
        `get_issue`, as GitHub answers a pull request's issue view); `head_repo` "" is the repository itself, None a
        deleted fork, `someone/fork` a fork."""
        pull = PullRequestInfo(
            number=number, state="open", merged=False, draft=False, title="", author=author, head_ref=head_ref,
            head_sha="a" * 40, head_repo=f"{owner}/{repo}" if head_repo == "" else head_repo, base_ref=base_ref,
            mergeable=None, html_url=f"https://github.com/{owner}/{repo}/pull/{number}",
        )
        self.pulls[(owner, repo, number)] = pull
        return pull

    def set_issue(
        self, owner: str, repo: str, number: int, *, title: str = "", body: str = "", author: str | None = "octocat",
        author_type: str = "User", updated_at: datetime | None = None, state: str = "open",
        is_pull_request: bool = False,
    ) -> Issue:
        """Answer `get_issue` for one issue (or pull request)."""
        kind = "pull" if is_pull_request else "issues"
        issue = Issue(
            number=number, title=title, body=body, author=author, author_type=author_type, updated_at=updated_at,
            state=state, is_pull_request=is_pull_request, html_url=f"https://github.com/{owner}/{repo}/{kind}/{number}",
        )
        self.issues[(owner, repo, number)] = issue
        return issue

    def add_hook_delivery(
        self, attempt_id: int, guid: str, delivered_at: datetime, *, status_code: int = 200, redelivery: bool = False,
        event: str = "issues", action: str | None = "opened",
    ) -> HookDelivery:
        """Log one delivery attempt; add them newest first, as GitHub lists them."""
        status = "OK" if 200 <= status_code < 300 else "failed"
        delivery = HookDelivery(attempt_id, guid, delivered_at, redelivery, status, status_code, event, action)
        self.hook_deliveries.append(delivery)
        return delivery

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

    def for_repo(self, installation_id: int, full_name: str) -> RepoGateway:
        """The gateway's own binding over this fake: its calls are recorded under the verbs it calls."""
        return RepoGateway.of(self, installation_id, full_name)

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
        if (owner, repo, comment_id, content) not in self.reactions:  # GitHub keeps one per user and content
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

    async def get_issue(self, installation_id: int, owner: str, repo: str, number: int) -> Issue:
        self._record("get_issue", installation_id, owner, repo, number)
        found = self.issues.get((owner, repo, number))
        if found is not None:
            return found
        pull = self.pulls.get((owner, repo, number))
        if pull is None:
            raise NotFound(f"no issue {number} (FakeGitHub)", status=404)
        # A pull request is an issue: GitHub answers its issue view too.
        return Issue(
            number=number, title=pull.title, body=self.pull_bodies.get((owner, repo, number), ""),
            author=pull.author, author_type="Bot" if pull.author.endswith("[bot]") else "User",
            updated_at=None, state=pull.state, is_pull_request=True, html_url=pull.html_url,
        )

    async def list_labels(self, installation_id: int, owner: str, repo: str, issue_number: int) -> list[str]:
        self._record("list_labels", installation_id, owner, repo, issue_number)
        return list(self.labels.get((owner, repo, issue_number), []))

    async def add_reaction_to_issue(
        self, installation_id: int, owner: str, repo: str, issue_number: int, content: Reaction
    ) -> None:
        self._record("add_reaction_to_issue", installation_id, owner, repo, issue_number, content)
        if (owner, repo, issue_number, content) not in self.issue_reactions:
            self.issue_reactions.append((owner, repo, issue_number, content))

    async def add_reaction_to_review_comment(
        self, installation_id: int, owner: str, repo: str, comment_id: int, content: Reaction
    ) -> None:
        self._record("add_reaction_to_review_comment", installation_id, owner, repo, comment_id, content)
        if (owner, repo, comment_id, content) not in self.review_comment_reactions:
            self.review_comment_reactions.append((owner, repo, comment_id, content))

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
        self._record("dispatch_workflow", installation_id, owner, repo, workflow, ref, dict(inputs),
                     return_run_details)
        if return_run_details and not self.returns_run_details:
            raise GitHubError("Invalid request. \"return_run_details\" is not a permitted key.", status=400)
        run_id = 9000 + len(self.workflow_runs) + 1
        # The run's title is what kickoff-agent.yml's `run-name` makes of the inputs.
        title = f"kickoff run {inputs.get('run_id', '')} ({inputs.get('correlation_id', '')})"
        self.workflow_runs[(owner, repo, run_id)] = WorkflowRun(
            run_id, title, "queued", None, f"https://github.com/{owner}/{repo}/actions/runs/{run_id}", self.now()
        )
        self.dispatches.append({"owner": owner, "repo": repo, "workflow": workflow, "ref": ref,
                                "inputs": dict(inputs), "run_id": run_id})
        return run_id if return_run_details else None

    async def get_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> WorkflowRun:
        self._record("get_workflow_run", installation_id, owner, repo, run_id)
        found = self.workflow_runs.get((owner, repo, run_id))
        if found is None:
            raise NotFound(f"no workflow run {run_id} (FakeGitHub)", status=404)
        return found

    async def list_workflow_runs(
        self, installation_id: int, owner: str, repo: str, workflow: str, created_since: datetime
    ) -> list[WorkflowRun]:
        self._record("list_workflow_runs", installation_id, owner, repo, workflow, created_since)
        runs = [r for (o, n, _), r in self.workflow_runs.items() if (o, n) == (owner, repo)]
        return sorted((r for r in runs if r.created_at >= created_since), key=lambda r: r.id, reverse=True)

    async def cancel_workflow_run(self, installation_id: int, owner: str, repo: str, run_id: int) -> None:
        self._record("cancel_workflow_run", installation_id, owner, repo, run_id)
        found = self.workflow_runs.get((owner, repo, run_id))
        if found is None:
            raise NotFound(f"no workflow run {run_id} (FakeGitHub)", status=404)
        if found.status != "completed":
            self.workflow_runs[(owner, repo, run_id)] = replace(found, status="completed", conclusion="cancelled")

    async def revoke_token(self, token: InstallationToken) -> None:
        self._record("revoke_token", token)
        self.revoked.append(token)

    async def get_app(self) -> AppIdentity:
        self._record("get_app")
        return AppIdentity(self.app_id, self.bot_login.removesuffix("[bot]"), self.app_name)

    async def get_user(self, installation_id: int, login: str) -> GitHubUser:
        self._record("get_user", installation_id, login)
        found = self.users.get(login)
        if found is None:
            raise NotFound(f"no user {login} (FakeGitHub)", status=404, method="GET", path=f"/users/{login}")
        return found

    async def list_hook_deliveries(self) -> AsyncIterator[HookDelivery]:
        self._record("list_hook_deliveries")
        for delivery in list(self.hook_deliveries):
            yield delivery

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        self._record("redeliver_hook_delivery", delivery_id)
        self.redelivered.append(delivery_id)

    # Pull requests and checks (bot.prs).

    async def open_pull_request(
        self, installation_id: int, owner: str, repo: str, *, head: str, base: str, title: str, body: str,
        draft: bool = False,
    ) -> PullRequestInfo:
        self._record("open_pull_request", installation_id, owner, repo, head, base, title, body, draft)
        for pull in self.pulls.values():
            if (pull.head_ref, pull.base_ref, pull.state) == (head, base, "open"):
                raise ValidationFailed(
                    "Validation Failed", status=422, method="POST", path=f"/repos/{owner}/{repo}/pulls",
                    errors=[{"resource": "PullRequest", "code": "custom",
                             "message": f"A pull request already exists for {owner}:{head}."}],
                )
        self._next_number += 1
        number = self._next_number
        sha = self.branch_shas.get((owner, repo, head), hashlib.sha1(head.encode(), usedforsecurity=False).hexdigest())
        pull = PullRequestInfo(
            number=number, state="open", merged=False, draft=draft, title=title, author=self.bot_login,
            head_ref=head, head_sha=sha, head_repo=f"{owner}/{repo}", base_ref=base, mergeable=True,
            html_url=f"https://github.com/{owner}/{repo}/pull/{number}",
        )
        self.pulls[(owner, repo, number)] = pull
        self.pull_bodies[(owner, repo, number)] = body
        return pull

    async def get_pull_request(self, installation_id: int, owner: str, repo: str, number: int) -> PullRequestInfo:
        self._record("get_pull_request", installation_id, owner, repo, number)
        found = self.pulls.get((owner, repo, number))
        if found is None:
            raise NotFound(f"no pull request {number} (FakeGitHub)", status=404)
        return found

    async def find_pull_requests(
        self, installation_id: int, owner: str, repo: str, *, head: str, state: str = "open"
    ) -> list[PullRequestInfo]:
        self._record("find_pull_requests", installation_id, owner, repo, head, state)
        # Newest first, as GitHub lists pull requests by default.
        return [p for (o, r, _), p in sorted(self.pulls.items(), reverse=True)
                if (o, r) == (owner, repo) and p.head_ref == head and state in ("all", p.state)]

    async def update_pull_request(
        self, installation_id: int, owner: str, repo: str, number: int, *, title: str | None = None,
        body: str | None = None, state: str | None = None,
    ) -> None:
        self._record("update_pull_request", installation_id, owner, repo, number, title, body, state)
        key = (owner, repo, number)
        if key not in self.pulls:
            raise NotFound(f"no pull request {number} (FakeGitHub)", status=404)
        if title is not None:
            self.pulls[key] = replace(self.pulls[key], title=title)
        if state is not None:
            self.pulls[key] = replace(self.pulls[key], state=state)
        if body is not None:
            self.pull_bodies[key] = body

    async def request_reviewers(
        self, installation_id: int, owner: str, repo: str, number: int, reviewers: Sequence[str]
    ) -> None:
        self._record("request_reviewers", installation_id, owner, repo, number, list(reviewers))
        self.reviewers.setdefault((owner, repo, number), []).extend(reviewers)

    async def create_check_run(
        self, installation_id: int, owner: str, repo: str, *, name: str, head_sha: str, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (), external_id: str | None = None,
    ) -> int:
        self._record("create_check_run", installation_id, owner, repo, name, head_sha, conclusion, title, summary,
                     tuple(actions), external_id)
        self._next_check_run_id += 1
        self.check_runs[self._next_check_run_id] = {
            "owner": owner, "repo": repo, "name": name, "head_sha": head_sha, "conclusion": conclusion,
            "title": title, "summary": summary, "actions": tuple(actions), "external_id": external_id,
        }
        self._check_runs_by_commit.setdefault((owner, repo, head_sha), []).append(self._next_check_run_id)
        return self._next_check_run_id

    async def update_check_run(
        self, installation_id: int, owner: str, repo: str, check_run_id: int, *, conclusion: str | None,
        title: str, summary: str, actions: Sequence[CheckRunAction] = (),
    ) -> None:
        self._record("update_check_run", installation_id, owner, repo, check_run_id, conclusion, title, summary,
                     tuple(actions))
        if check_run_id not in self.check_runs:
            raise NotFound(f"no check run {check_run_id} (FakeGitHub)", status=404)
        self.check_runs[check_run_id].update(conclusion=conclusion, title=title, summary=summary,
                                             actions=tuple(actions))

    async def list_check_runs(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CheckRunInfo]:
        self._record("list_check_runs", installation_id, owner, repo, ref)
        # As GitHub lists them: newest first, only the latest run of each name (GitHub's `filter=latest`), made by
        # this App; `ref` may name a branch.
        sha = self.branch_shas.get((owner, repo, ref), ref)
        own: dict[str, CheckRunInfo] = {}
        for cid in reversed(self._check_runs_by_commit.get((owner, repo, sha), [])):
            c = self.check_runs[cid]
            if c["name"] not in own:
                own[c["name"]] = CheckRunInfo(
                    id=cid, name=c["name"], head_sha=c["head_sha"],
                    status="completed" if c["conclusion"] else "in_progress", conclusion=c["conclusion"],
                    app_id=self.app_id, title=c["title"], summary=c["summary"],
                )
        return [*self.foreign_check_runs.get((owner, repo, sha), []), *own.values()]

    async def delete_branch(self, installation_id: int, owner: str, repo: str, branch: str) -> None:
        self._record("delete_branch", installation_id, owner, repo, branch)
        self.deleted_branches.append((owner, repo, branch))
        self.branch_shas.pop((owner, repo, branch), None)

    async def list_review_comments(
        self, installation_id: int, owner: str, repo: str, number: int
    ) -> list[ReviewComment]:
        self._record("list_review_comments", installation_id, owner, repo, number)
        return list(self.review_comments.get((owner, repo, number), []))

    # The review queue (bot.queue).

    async def list_commit_statuses(self, installation_id: int, owner: str, repo: str, ref: str) -> list[CommitStatus]:
        self._record("list_commit_statuses", installation_id, owner, repo, ref)
        return list(self.commit_statuses.get((owner, repo, ref), []))

    async def list_reviews(self, installation_id: int, owner: str, repo: str, number: int) -> list[PullReview]:
        self._record("list_reviews", installation_id, owner, repo, number)
        return list(self.pull_reviews.get((owner, repo, number), []))

    async def list_pull_request_files(self, installation_id: int, owner: str, repo: str, number: int) -> list[str]:
        self._record("list_pull_request_files", installation_id, owner, repo, number)
        return list(self.pull_files.get((owner, repo, number), []))

    async def get_branch_sha(self, installation_id: int, owner: str, repo: str, branch: str) -> str:
        self._record("get_branch_sha", installation_id, owner, repo, branch)
        found = self.branch_shas.get((owner, repo, branch))
        if found is None:
            raise NotFound(f"no branch {branch} (FakeGitHub)", status=404)
        return found

    async def compare_commits(self, installation_id: int, owner: str, repo: str, base: str, head: str) -> Comparison:
        self._record("compare_commits", installation_id, owner, repo, base, head)
        # Either side may name a branch, as on GitHub.
        base = self.branch_shas.get((owner, repo, base), base)
        head = self.branch_shas.get((owner, repo, head), head)
        if base == head:
            return Comparison("identical", 0, 0)
        if (owner, repo, head, base) in self.contains:
            return Comparison("ahead", 1, 0)
        return Comparison("diverged", 1, 1)

    async def update_branch(
        self, installation_id: int, owner: str, repo: str, number: int, expected_head_sha: str
    ) -> None:
        """Merges the base for pretend: a new head sha that contains the base's."""
        self._record("update_branch", installation_id, owner, repo, number, expected_head_sha)
        path = f"/repos/{owner}/{repo}/pulls/{number}/update-branch"
        pull = self.pulls[(owner, repo, number)]
        base = self.branch_shas.get((owner, repo, pull.base_ref), "0" * 40)
        if pull.head_sha != expected_head_sha:
            raise ValidationFailed("expected_head_sha does not match the pull request's head sha", status=422,
                                   method="PUT", path=path)
        if (owner, repo, number) in self.conflicting:
            raise ValidationFailed("merge conflict between base and head", status=422, method="PUT", path=path)
        if (owner, repo, pull.head_sha, base) in self.contains:
            raise ValidationFailed("There are no new commits on the base branch.", status=422, method="PUT",
                                   path=path)
        new = hashlib.sha1(f"{pull.head_sha}+{base}".encode(), usedforsecurity=False).hexdigest()
        self.contains.add((owner, repo, new, base))
        self.pulls[(owner, repo, number)] = replace(pull, head_sha=new)
        self.branch_shas[(owner, repo, pull.head_ref)] = new

    async def merge_pull(
        self, installation_id: int, owner: str, repo: str, number: int, *, sha: str, merge_method: str
    ) -> str:
        """Merges for pretend: the base moves to a new sha that contains the old base and the head."""
        self._record("merge_pull", installation_id, owner, repo, number, sha, merge_method)
        path = f"/repos/{owner}/{repo}/pulls/{number}/merge"
        pull = self.pulls[(owner, repo, number)]
        if pull.state != "open" or pull.merged:
            # 405 is no `Conflict` (409) at the gateway: a plain `GitHubError` with the status.
            raise GitHubError("Pull Request is not mergeable", status=405, method="PUT", path=path)
        if pull.head_sha != sha:
            raise Conflict("Head branch was modified. Review and try the merge again.", status=409, method="PUT",
                           path=path)
        old = self.branch_shas.get((owner, repo, pull.base_ref), "0" * 40)
        new = hashlib.sha1(f"{old}+{sha}".encode(), usedforsecurity=False).hexdigest()
        self.branch_shas[(owner, repo, pull.base_ref)] = new
        self.contains.update({(owner, repo, new, old), (owner, repo, new, sha)})
        self.pulls[(owner, repo, number)] = replace(pull, state="closed", merged=True)
        return new

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
