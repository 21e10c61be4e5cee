"""One contract for both GitHubs the tests use: the shared fake (`tests/fake_github.py`) and the real
`GitHubGateway` talking to the simulator (`bot.sandbox`) over HTTP.

Every scenario runs against both backends and asserts the same observable results, so the fake that logic tests
trust cannot drift from what the gateway gets from a GitHub. A backend only seeds the world (through its own
helpers: the fake's attributes and `add_comment`/`set_issue`, the simulator's control verbs and REST) and reads
back what a verb left that no verb reads (reactions, how often `GET /app` was asked); the verbs under test are
always called through `GitHubAPI`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from bot.github import (
    CheckRunAction,
    GitHubAPI,
    GitHubError,
    GitHubGateway,
    NotFound,
    RepoGateway,
    ValidationFailed,
)
from bot.github.models import CommitStatus
from bot.sandbox import Sandbox, SandboxServer
from tests.fake_github import FakeGitHub, blob_sha
from tests.github.harness import AppKey

OWNER = "octo"
REPO = "hello"
APP_NAME = "Kickoff"
BOT = "kickoff[bot]"
README = "# hello\n"
FAKE_ACCEPTS_UNSEEN = (
    "the fake takes comments and reactions on issues and comments it was never shown, as logic tests drive it from "
    "webhook payloads without seeding them"
)


class Backend(Protocol):
    """A GitHub to run the contract against: the verbs, and the few seeding and reading helpers no verb covers."""

    @property
    def name(self) -> str: ...

    @property
    def github(self) -> GitHubAPI: ...

    @property
    def repo(self) -> RepoGateway: ...

    @property
    def main_sha(self) -> str:
        """The default branch's head once the backend is set up."""
        ...

    async def open_issue(self, title: str, body: str, *, author: str) -> int: ...

    async def add_comment(self, number: int, body: str, *, author: str) -> int: ...

    async def push_branch(self, branch: str, files: Mapping[str, str]) -> str:
        """A new branch one commit ahead of the default branch; its head sha."""
        ...

    async def advance_main(self, files: Mapping[str, str]) -> str:
        """Someone pushes one commit to the default branch; its new head sha."""
        ...

    async def set_status(self, sha: str, context: str, state: str) -> None:
        """A commit status someone else (CI) posted."""
        ...

    async def comment_reactions(self, comment_id: int) -> list[str]: ...

    async def issue_reactions(self, number: int) -> list[str]: ...

    async def app_fetches(self) -> int | None:
        """How often `GET /app` reached GitHub; None where there is no wire to count on."""
        ...


@dataclass
class FakeBackend:
    """The shared fake, seeded through its own helpers and attributes."""

    name = "fake"
    github: FakeGitHub = field(default_factory=lambda: FakeGitHub(app_id=1, bot_login=BOT))
    installation_id: int = 1
    main_sha: str = field(default_factory=lambda: hashlib.sha1(b"main", usedforsecurity=False).hexdigest())
    _next_issue: int = 1

    def __post_init__(self) -> None:
        self.github.branch_shas[(OWNER, REPO, "main")] = self.main_sha
        self.github.set_file(OWNER, REPO, "README.md", README)

    @property
    def repo(self) -> RepoGateway:
        return self.github.for_repo(self.installation_id, f"{OWNER}/{REPO}")

    async def open_issue(self, title: str, body: str, *, author: str) -> int:
        number = self._next_issue
        self._next_issue += 1
        self.github.set_issue(OWNER, REPO, number, title=title, body=body, author=author, updated_at=self.github.now())
        return number

    async def add_comment(self, number: int, body: str, *, author: str) -> int:
        return self.github.add_comment(OWNER, REPO, number, body, author=author)

    async def push_branch(self, branch: str, files: Mapping[str, str]) -> str:
        sha = hashlib.sha1(f"{branch}:{sorted(files.items())}".encode(), usedforsecurity=False).hexdigest()
        self.github.branch_shas[(OWNER, REPO, branch)] = sha
        self.github.contains.add((OWNER, REPO, sha, self.main_sha))
        for path, text in files.items():
            self.github.set_file(OWNER, REPO, path, text, ref=branch)
        return sha

    async def advance_main(self, files: Mapping[str, str]) -> str:
        old = self.main_sha
        self.main_sha = hashlib.sha1(f"{old}:{sorted(files.items())}".encode(), usedforsecurity=False).hexdigest()
        self.github.branch_shas[(OWNER, REPO, "main")] = self.main_sha
        self.github.contains.add((OWNER, REPO, self.main_sha, old))
        return self.main_sha

    async def set_status(self, sha: str, context: str, state: str) -> None:
        statuses = self.github.commit_statuses.setdefault((OWNER, REPO, sha), [])
        statuses[:] = [s for s in statuses if s.context != context] + [CommitStatus(context, state)]

    async def comment_reactions(self, comment_id: int) -> list[str]:
        return [c for o, r, cid, c in self.github.reactions if (o, r, cid) == (OWNER, REPO, comment_id)]

    async def issue_reactions(self, number: int) -> list[str]:
        return [c for o, r, n, c in self.github.issue_reactions if (o, r, n) == (OWNER, REPO, number)]

    async def app_fetches(self) -> int | None:
        return None


@dataclass
class SandboxBackend:
    """The real gateway against a running simulator, seeded through the simulator's control verbs and REST."""

    name = "sandbox"
    sandbox: Sandbox
    base_url: str
    github: GitHubGateway
    installation_id: int
    main_sha: str

    @property
    def repo(self) -> RepoGateway:
        return self.github.for_repo(self.installation_id, f"{OWNER}/{REPO}")

    async def open_issue(self, title: str, body: str, *, author: str) -> int:
        return await self.sandbox.aio.open_issue(OWNER, REPO, title, body, sender=author)

    async def add_comment(self, number: int, body: str, *, author: str) -> int:
        return await self.sandbox.aio.comment(OWNER, REPO, number, body, sender=author)

    async def push_branch(self, branch: str, files: Mapping[str, str]) -> str:
        return await self.sandbox.aio.push_commit(OWNER, REPO, branch, dict(files), f"Add {', '.join(files)}")

    async def advance_main(self, files: Mapping[str, str]) -> str:
        self.main_sha = await self.push_branch("main", files)
        return self.main_sha

    async def set_status(self, sha: str, context: str, state: str) -> None:
        await self._rest("POST", f"/repos/{OWNER}/{REPO}/statuses/{sha}", {"state": state, "context": context})

    async def comment_reactions(self, comment_id: int) -> list[str]:
        found = await self._rest("GET", f"/repos/{OWNER}/{REPO}/issues/comments/{comment_id}/reactions")
        return [r["content"] for r in found]

    async def issue_reactions(self, number: int) -> list[str]:
        return [r["content"] for r in await self._rest("GET", f"/repos/{OWNER}/{REPO}/issues/{number}/reactions")]

    async def app_fetches(self) -> int | None:
        await self._requests_recorded()
        return sum(1 for r in self.sandbox.requests if (r.method, r.path) == ("GET", "/app"))

    async def _requests_recorded(self) -> None:
        """The simulator records a request just after answering it: wait until a later request is recorded too."""
        barrier = f"/repos/{OWNER}/{REPO}/issues/{secrets.randbelow(10**9) + 10**9}"
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=30) as client:
            await client.get(barrier)
        deadline = time.monotonic() + 5
        while not any(r.path == barrier for r in self.sandbox.requests) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _rest(self, method: str, path: str, body: Any = None) -> Any:
        """The simulator's REST as the installation: for seeding and reading only, never a verb under test."""
        token = await self.sandbox.aio.installation_token(self.installation_id)
        headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=30) as client:
            response = await client.request(method, path, json=body, headers=headers)
        response.raise_for_status()
        return response.json()


@pytest.fixture(params=["fake", "sandbox"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, app_key: AppKey) -> AsyncIterator[Backend]:
    """Each scenario gets a fresh world; the simulator's App reuses the session's key (making one is the slow
    part)."""
    if request.param == "fake":
        yield FakeBackend()
        return
    sb = Sandbox(tmp_path / "github", retry_delays=())
    try:
        async with SandboxServer(sb) as base_url:
            creds = await sb.aio.create_app(APP_NAME, private_key_pem=app_key.private_pem)
            await sb.aio.create_repo(OWNER, REPO, {"README.md": README})
            installation_id = await sb.aio.install(creds.app_id, OWNER, [REPO])
            main_sha = await sb.aio.push_commit(OWNER, REPO, "main", {"main.txt": "main\n"}, "Seed main")
            async with GitHubGateway(creds.app_id, creds.private_key_pem, base_url=base_url) as gateway:
                yield SandboxBackend(sb, base_url, gateway, installation_id, main_sha)
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


def skip_on(backend: Backend, name: str, reason: str) -> None:
    """Skip one scenario for one backend only, with the reason in the report."""
    if backend.name == name:
        pytest.skip(f"{name}: {reason}")


async def test_get_issue_as_opened(backend: Backend) -> None:
    number = await backend.open_issue("Crash on start", "It crashes.", author="alice")

    issue = await backend.repo.get_issue(number)

    assert (issue.number, issue.title, issue.body, issue.author, issue.author_type) == (
        number, "Crash on start", "It crashes.", "alice", "User",
    )
    assert (issue.state, issue.is_pull_request) == ("open", False)
    assert issue.updated_at is not None
    assert issue.html_url.endswith(f"/{OWNER}/{REPO}/issues/{number}")


async def test_missing_issue_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound) as raised:
        await backend.repo.get_issue(4242)
    assert raised.value.status == 404


async def test_comment_edit_and_list(backend: Backend) -> None:
    number = await backend.open_issue("Crash", "", author="alice")
    theirs = await backend.add_comment(number, "Still broken", author="bob")

    ours = await backend.repo.comment(number, "On it")
    await backend.repo.edit_comment(ours, "Done")
    comments = await backend.repo.list_issue_comments(number)

    assert [(c.id, c.body, c.author, c.author_type) for c in comments] == [
        (theirs, "Still broken", "bob", "User"),
        (ours, "Done", BOT, "Bot"),
    ]
    assert comments[1].updated_at >= comments[1].created_at
    assert comments[1].html_url.endswith(f"#issuecomment-{ours}")


async def test_editing_a_missing_comment_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.repo.edit_comment(987654, "nope")


async def test_labels_add_list_remove(backend: Backend) -> None:
    number = await backend.open_issue("Crash", "", author="alice")

    await backend.repo.add_labels(number, ["agent:fix", "bug"])
    await backend.repo.add_labels(number, ["bug"])
    await backend.repo.add_labels(number, [])
    assert await backend.repo.list_labels(number) == ["agent:fix", "bug"]

    await backend.repo.remove_label(number, "agent:fix")
    await backend.repo.remove_label(number, "never-there")
    assert await backend.repo.list_labels(number) == ["bug"]


async def test_reactions_to_comment_and_issue(backend: Backend) -> None:
    number = await backend.open_issue("Crash", "", author="alice")
    comment_id = await backend.add_comment(number, "/kickoff fix", author="alice")

    await backend.repo.add_reaction_to_comment(comment_id, "eyes")
    await backend.repo.add_reaction_to_issue(number, "rocket")

    assert await backend.comment_reactions(comment_id) == ["eyes"]
    assert await backend.issue_reactions(number) == ["rocket"]


async def test_get_app_identity(backend: Backend) -> None:
    first = await backend.github.get_app()
    second = await backend.github.get_app()

    assert first == second
    assert (first.slug, first.name, first.bot_login) == ("kickoff", APP_NAME, BOT)


async def test_get_app_is_fetched_once(backend: Backend) -> None:
    skip_on(backend, "fake", "the fake answers get_app from memory: there is no fetch to count")
    await backend.github.get_app()
    await backend.github.get_app()

    assert await backend.app_fetches() == 1


async def test_open_get_and_find_pull_requests(backend: Backend) -> None:
    head_sha = await backend.push_branch("kickoff/1-fix", {"fix.txt": "fixed\n"})

    opened = await backend.repo.open_pull_request(head="kickoff/1-fix", base="main", title="Fix", body="Fixes #1")
    fetched = await backend.repo.get_pull_request(opened.number)
    found = await backend.repo.find_pull_requests(head="kickoff/1-fix")

    for pull in (opened, fetched):
        assert (pull.state, pull.merged, pull.draft, pull.title, pull.author) == ("open", False, False, "Fix", BOT)
        assert (pull.head_ref, pull.head_sha, pull.head_repo, pull.base_ref) == (
            "kickoff/1-fix", head_sha, f"{OWNER}/{REPO}", "main",
        )
        assert pull.html_url.endswith(f"/{OWNER}/{REPO}/pull/{opened.number}")
    assert [p.number for p in found] == [opened.number]
    assert await backend.repo.find_pull_requests(head="elsewhere") == []
    assert (await backend.repo.get_issue(opened.number)).is_pull_request


async def test_a_second_pull_request_for_the_same_head_fails_validation(backend: Backend) -> None:
    await backend.push_branch("kickoff/2-fix", {"two.txt": "2\n"})
    await backend.repo.open_pull_request(head="kickoff/2-fix", base="main", title="Fix", body="")

    with pytest.raises(ValidationFailed) as raised:
        await backend.repo.open_pull_request(head="kickoff/2-fix", base="main", title="Again", body="")
    assert raised.value.status == 422
    assert "already exists" in str(raised.value)


async def test_find_pull_requests_lists_newest_first(backend: Backend) -> None:
    await backend.push_branch("kickoff/3-fix", {"three.txt": "3\n"})
    first = await backend.repo.open_pull_request(head="kickoff/3-fix", base="main", title="One", body="")
    await backend.repo.update_pull_request(first.number, state="closed")
    second = await backend.repo.open_pull_request(head="kickoff/3-fix", base="main", title="Two", body="")

    every = await backend.repo.find_pull_requests(head="kickoff/3-fix", state="all")

    assert [p.number for p in every] == [second.number, first.number]
    assert [p.number for p in await backend.repo.find_pull_requests(head="kickoff/3-fix")] == [second.number]


async def test_update_pull_request(backend: Backend) -> None:
    await backend.push_branch("kickoff/4-fix", {"four.txt": "4\n"})
    opened = await backend.repo.open_pull_request(head="kickoff/4-fix", base="main", title="Fix", body="")

    await backend.repo.update_pull_request(opened.number, title="Fix it better")
    assert (await backend.repo.get_pull_request(opened.number)).title == "Fix it better"

    await backend.repo.update_pull_request(opened.number, state="closed")
    closed = await backend.repo.get_pull_request(opened.number)
    assert (closed.state, closed.merged) == ("closed", False)


async def test_merge_pull_request(backend: Backend) -> None:
    head_sha = await backend.push_branch("kickoff/5-fix", {"five.txt": "5\n"})
    opened = await backend.repo.open_pull_request(head="kickoff/5-fix", base="main", title="Fix", body="")

    with pytest.raises(GitHubError) as stale:
        await backend.repo.merge_pull(opened.number, sha=backend.main_sha, merge_method="merge")
    assert stale.value.status == 409

    merge_sha = await backend.repo.merge_pull(opened.number, sha=head_sha, merge_method="merge")

    merged = await backend.repo.get_pull_request(opened.number)
    assert (merged.state, merged.merged) == ("closed", True)
    assert await backend.repo.get_branch_sha("main") == merge_sha
    assert (await backend.repo.compare_commits(head_sha, "main")).head_contains_base

    with pytest.raises(GitHubError) as again:
        await backend.repo.merge_pull(opened.number, sha=head_sha, merge_method="merge")
    assert again.value.status == 405
    assert type(again.value) is GitHubError


async def test_check_runs_create_update_list(backend: Backend) -> None:
    sha = await backend.push_branch("kickoff/6-fix", {"six.txt": "6\n"})
    app = await backend.github.get_app()
    button = CheckRunAction("Retry", "Run the agent again", "retry")

    run_id = await backend.repo.create_check_run(
        name="agent-run", head_sha=sha, conclusion=None, title="Running", summary="The agent is at work",
        external_id="run-6",
    )
    started = await backend.repo.list_check_runs(sha)
    assert [(r.id, r.name, r.head_sha, r.status, r.conclusion, r.app_id, r.title, r.summary) for r in started] == [
        (run_id, "agent-run", sha, "in_progress", None, app.id, "Running", "The agent is at work"),
    ]

    await backend.repo.update_check_run(
        run_id, conclusion="failure", title="Failed", summary="Tests failed", actions=[button]
    )
    [finished] = await backend.repo.list_check_runs(sha)
    assert (finished.id, finished.status, finished.conclusion, finished.title, finished.summary) == (
        run_id, "completed", "failure", "Failed", "Tests failed",
    )


async def test_check_runs_list_the_latest_per_name_newest_first(backend: Backend) -> None:
    sha = await backend.push_branch("kickoff/7-fix", {"seven.txt": "7\n"})
    old = await backend.repo.create_check_run(
        name="agent-run", head_sha=sha, conclusion="failure", title="Failed", summary="1"
    )
    other = await backend.repo.create_check_run(
        name="review-queue", head_sha=sha, conclusion="success", title="Queued", summary="2"
    )
    new = await backend.repo.create_check_run(
        name="agent-run", head_sha=sha, conclusion="success", title="Passed", summary="3"
    )

    listed = await backend.repo.list_check_runs(sha)

    assert old not in [r.id for r in listed]
    assert [(r.id, r.name, r.conclusion) for r in listed] == [
        (new, "agent-run", "success"), (other, "review-queue", "success"),
    ]


async def test_updating_a_missing_check_run_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.repo.update_check_run(999999, conclusion="success", title="t", summary="s")


async def test_commit_statuses_latest_per_context(backend: Backend) -> None:
    sha = await backend.push_branch("kickoff/8-fix", {"eight.txt": "8\n"})
    await backend.set_status(sha, "ci/build", "pending")
    await backend.set_status(sha, "ci/lint", "success")
    await backend.set_status(sha, "ci/build", "failure")

    statuses = await backend.repo.list_commit_statuses(sha)

    assert sorted(statuses, key=lambda s: s.context) == [
        CommitStatus("ci/build", "failure"), CommitStatus("ci/lint", "success"),
    ]
    assert await backend.repo.list_commit_statuses(backend.main_sha) == []


async def test_branch_sha_and_compare(backend: Backend) -> None:
    head_sha = await backend.push_branch("kickoff/9-fix", {"nine.txt": "9\n"})

    assert await backend.repo.get_branch_sha("kickoff/9-fix") == head_sha
    assert await backend.repo.get_branch_sha("main") == backend.main_sha

    ahead = await backend.repo.compare_commits("main", "kickoff/9-fix")
    assert (ahead.status, ahead.ahead_by, ahead.behind_by, ahead.head_contains_base) == ("ahead", 1, 0, True)
    same = await backend.repo.compare_commits(head_sha, head_sha)
    assert (same.status, same.ahead_by, same.behind_by) == ("identical", 0, 0)

    with pytest.raises(NotFound):
        await backend.repo.get_branch_sha("no-such-branch")


async def test_update_branch(backend: Backend) -> None:
    head_sha = await backend.push_branch("kickoff/10-fix", {"ten.txt": "10\n"})
    opened = await backend.repo.open_pull_request(head="kickoff/10-fix", base="main", title="Fix", body="")

    with pytest.raises(ValidationFailed) as up_to_date:
        await backend.repo.update_branch(opened.number, head_sha)
    assert up_to_date.value.status == 422

    await backend.advance_main({"other.txt": "other\n"})
    assert not (await backend.repo.compare_commits("main", "kickoff/10-fix")).head_contains_base
    with pytest.raises(ValidationFailed):
        await backend.repo.update_branch(opened.number, backend.main_sha)

    await backend.repo.update_branch(opened.number, head_sha)

    updated = await backend.repo.get_pull_request(opened.number)
    assert updated.head_sha != head_sha
    assert await backend.repo.get_branch_sha("kickoff/10-fix") == updated.head_sha
    after = await backend.repo.compare_commits("main", "kickoff/10-fix")
    assert (after.status, after.behind_by, after.head_contains_base) == ("ahead", 0, True)


async def test_delete_branch(backend: Backend) -> None:
    await backend.push_branch("kickoff/11-fix", {"eleven.txt": "11\n"})

    await backend.repo.delete_branch("kickoff/11-fix")
    await backend.repo.delete_branch("kickoff/11-fix")

    with pytest.raises(NotFound):
        await backend.repo.get_branch_sha("kickoff/11-fix")


async def test_get_file(backend: Backend) -> None:
    await backend.push_branch("kickoff/12-fix", {"docs/twelve.md": "twelve\n"})

    readme = await backend.repo.get_file("README.md")
    assert readme == (README, blob_sha(README))
    assert await backend.repo.get_file("docs/twelve.md", ref="kickoff/12-fix") == ("twelve\n", blob_sha("twelve\n"))
    assert await backend.repo.get_file("docs/twelve.md") is None
    assert await backend.repo.get_file("nowhere.txt") is None


async def test_reacting_twice_leaves_one_reaction(backend: Backend) -> None:
    number = await backend.open_issue("Crash", "", author="alice")
    comment_id = await backend.add_comment(number, "/kickoff fix", author="alice")

    await backend.repo.add_reaction_to_comment(comment_id, "eyes")
    await backend.repo.add_reaction_to_comment(comment_id, "eyes")
    await backend.repo.add_reaction_to_issue(number, "rocket")
    await backend.repo.add_reaction_to_issue(number, "rocket")

    assert await backend.comment_reactions(comment_id) == ["eyes"]
    assert await backend.issue_reactions(number) == ["rocket"]


async def test_a_missing_pull_request_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.repo.get_pull_request(4242)


async def test_writing_to_a_missing_issue_or_comment_is_not_found(backend: Backend) -> None:
    skip_on(backend, "fake", FAKE_ACCEPTS_UNSEEN)
    number = await backend.open_issue("Crash", "", author="alice")

    with pytest.raises(NotFound):
        await backend.repo.add_reaction_to_comment(987654, "eyes")
    with pytest.raises(NotFound):
        await backend.repo.comment(4242, "hello?")
    assert await backend.repo.list_issue_comments(number) == []
