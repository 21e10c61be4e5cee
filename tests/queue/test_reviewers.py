"""The review gate, attacked: only reviewers with write access move the queue. Kickoff's real gateway talks HTTP
to the sandbox (a public repository, where anyone may press "Approve"); reviews are submitted through the REST API
with each reviewer's own token, and permissions change between reconciles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import messages
from bot.github.gateway import GitHubGateway
from bot.queue import texts
from bot.queue.model import REVIEW_FLOOR
from bot.queue.service import Outcome, QueueService
from bot.queue.store import QueueKey
from bot.root import compose
from bot.sandbox import Sandbox, SandboxServer
from bot.store.db import Store
from bot.store.models import PullRequest, utcnow
from tests.support import make_settings

OWNER, REPO = "octo", "public"
FULL = f"{OWNER}/{REPO}"
CHECK = "review-queue"


@dataclass
class Lane:
    sandbox: Sandbox
    api: str
    installation_id: int
    service: QueueService
    http: httpx.AsyncClient
    app_token: str

    @property
    def key(self) -> QueueKey:
        return QueueKey(self.installation_id, FULL, "main")

    async def config(self, text: str) -> None:
        await self.sandbox.aio.push_commit(OWNER, REPO, "main", {".github/kickoff.yml": text})

    async def open_pr(self, index: int) -> int:
        """A Kickoff pull request (as the pull-request feature records it), branched from the current `main`."""
        branch = f"kickoff/1-fix-agent{index}-{index}"
        await self.sandbox.aio.push_commit(OWNER, REPO, branch, {f"feature{index}.txt": f"change {index}\n"})
        number = await self.sandbox.aio.open_pull(OWNER, REPO, branch, "main", f"fix: part {index}")
        pull = await self.pull(number)
        store = self.service.services.store
        now = utcnow()
        async with store.sessions.begin() as session:
            session.add(PullRequest(
                installation_id=self.installation_id, repository=FULL, number=number, agent="claude",
                title=pull["title"], head_ref=branch, head_sha=pull["head"]["sha"], base_ref="main", state="open",
                created_at=now, updated_at=now,
            ))
        return number

    async def review(self, number: int, login: str, event: str) -> None:
        """`login` submits a review through the REST API with their own token, as an attacker would."""
        token = await self.sandbox.aio.user_token(login)
        body: dict[str, str] = {"event": event}
        if event != "APPROVE":
            body["body"] = "see inline"
        r = await self.http.post(f"/repos/{FULL}/pulls/{number}/reviews", json=body,
                                 headers={"Authorization": f"token {token}"})
        assert r.status_code == 200, r.text

    async def reconcile(self) -> Outcome:
        return await self.service.reconcile(self.key)

    async def pull(self, number: int) -> dict[str, Any]:
        r = await self.http.get(f"/repos/{FULL}/pulls/{number}", headers={"Authorization": f"token {self.app_token}"})
        data: dict[str, Any] = r.json()
        return data

    async def check(self, number: int) -> dict[str, Any]:
        """The latest `review-queue` check run on the pull request's head."""
        sha = (await self.pull(number))["head"]["sha"]
        r = await self.http.get(f"/repos/{FULL}/commits/{sha}/check-runs",
                                headers={"Authorization": f"token {self.app_token}"})
        runs = [run for run in r.json()["check_runs"] if run["name"] == CHECK]
        assert runs, f"no {CHECK} check on #{number}"
        found: dict[str, Any] = max(runs, key=lambda run: run["id"])
        return found

    def requests(self, method: str, suffix: str) -> list[str]:
        return [r.path for r in self.sandbox.requests
                if r.kind == "rest" and r.method == method and r.path.endswith(suffix)]

    def permission_requests(self) -> list[str]:
        """The logins whose permission Kickoff asked GitHub for, one entry per HTTP request."""
        prefix = f"/repos/{FULL}/collaborators/"
        return [path[len(prefix):].split("/")[0] for path in self.requests("GET", "/permission")
                if path.startswith(prefix)]


@pytest.fixture
async def lane(tmp_path: Path, database_url: str) -> AsyncIterator[Lane]:
    sandbox = Sandbox(tmp_path / "github", retry_delays=())
    try:
        async with SandboxServer(sandbox) as api:
            creds = await sandbox.aio.create_app("Kickoff")
            await sandbox.aio.create_repo(OWNER, REPO, {"README.md": "# public\n",
                                                        ".github/kickoff.yml": "queue: {merge: auto}\n"},
                                          private=False)
            await sandbox.aio.set_permission(OWNER, REPO, "writer", "write")
            await sandbox.aio.set_permission(OWNER, REPO, "maintainer", "maintain")
            installation_id = await sandbox.aio.install(creds.app_id, OWNER)
            app_token = await sandbox.aio.installation_token(installation_id)
            store = Store(database_url)
            await store.migrate()
            gateway = GitHubGateway(creds.app_id, creds.private_key_pem, base_url=api)
            settings = make_settings(database_url, APP_ID=creds.app_id, PRIVATE_KEY=creds.private_key_pem,
                                     GITHUB_API_URL=api)
            services = compose(settings, store, github=gateway)
            service = QueueService(services)
            try:
                async with httpx.AsyncClient(base_url=api, trust_env=False, timeout=30) as http:
                    yield Lane(sandbox, api, installation_id, service, http, app_token)
            finally:
                await gateway.aclose()
                await store.close()
        violations = sandbox.violations
    finally:
        sandbox.close()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


def not_counted(approvals: tuple[str, ...] = (), changes: tuple[str, ...] = ()) -> str:
    """The check's note, as the summary shows it (logins escaped)."""
    return messages.queue_reviews_not_counted(
        [texts.cell("@" + login, 60) for login in approvals],
        [texts.cell("@" + login, 60) for login in changes],
        floor=REVIEW_FLOOR,
    )


async def test_a_strangers_approval_does_not_move_the_queue_or_merge(lane: Lane) -> None:
    number = await lane.open_pr(1)
    await lane.reconcile()
    assert (await lane.check(number))["output"]["title"] == "Next for review"

    await lane.review(number, "stranger", "APPROVE")  # read, as everyone on a public repository
    outcome = await lane.reconcile()

    assert outcome.merged == []
    check = await lane.check(number)
    assert (check["status"], check["conclusion"]) == ("in_progress", None)
    assert check["output"]["title"] == "Next for review"
    assert not_counted(("stranger",)) in check["output"]["summary"]
    assert "1 approval from \\@stranger did not count: reviewers need write access" in check["output"]["summary"]
    assert lane.requests("PUT", "/merge") == []
    assert lane.requests("PUT", "/update-branch") == []
    assert not (await lane.pull(number))["merged"]


async def test_a_strangers_approval_beside_a_writers_change_request_stays_blocked(lane: Lane) -> None:
    number = await lane.open_pr(1)
    await lane.review(number, "writer", "REQUEST_CHANGES")
    await lane.review(number, "stranger", "APPROVE")
    await lane.reconcile()

    check = await lane.check(number)
    assert check["output"]["title"].startswith("Changes requested")
    assert check["conclusion"] is None
    assert not_counted(("stranger",)) in check["output"]["summary"]
    assert lane.requests("PUT", "/merge") == []


async def test_a_writers_approval_merges_and_a_strangers_change_request_cannot_block_it(lane: Lane) -> None:
    number = await lane.open_pr(1)
    await lane.review(number, "stranger", "REQUEST_CHANGES")
    await lane.review(number, "writer", "APPROVE")
    outcome = await lane.reconcile()

    assert outcome.merged == [number]
    assert len(lane.requests("PUT", "/merge")) == 1
    assert (await lane.pull(number))["merged"]


async def test_a_writer_downgraded_to_read_stops_counting_at_the_next_reconcile(lane: Lane) -> None:
    await lane.config("queue: {merge: manual}\n")
    number = await lane.open_pr(1)
    await lane.review(number, "writer", "APPROVE")
    await lane.reconcile()
    check = await lane.check(number)
    assert check["conclusion"] == "success", check["output"]
    assert check["output"]["title"].startswith("Up next to merge")

    await lane.sandbox.aio.set_permission(OWNER, REPO, "writer", "read")
    await lane.reconcile()

    check = await lane.check(number)
    assert (check["status"], check["conclusion"]) == ("in_progress", None)  # the success is taken away
    assert check["output"]["title"] == "Next for review"
    assert not_counted(("writer",)) in check["output"]["summary"]

    # Restored: it counts again, with nothing remembered in between.
    await lane.sandbox.aio.set_permission(OWNER, REPO, "writer", "write")
    await lane.reconcile()
    assert (await lane.check(number))["conclusion"] == "success"


async def test_each_reviewer_is_asked_once_per_reconcile(lane: Lane) -> None:
    first, second = await lane.open_pr(1), await lane.open_pr(2)
    for number in (first, second):
        await lane.review(number, "writer", "APPROVE")
        await lane.review(number, "stranger", "APPROVE")
    await lane.review(second, "maintainer", "REQUEST_CHANGES")
    await lane.review(second, "maintainer", "COMMENT")  # a comment does not override the change request
    await lane.review(second, "bystander", "COMMENT")  # never decisive: never asked

    # One reconcile: #1 merges and the queue is evaluated again at once, with the permissions already asked.
    outcome = await lane.reconcile()
    assert outcome.merged == [first]
    asked = lane.permission_requests()
    assert sorted(asked) == ["maintainer", "stranger", "writer"]
    assert (await lane.check(second))["output"]["title"].startswith("Changes requested")

    # The next reconcile asks again (a permission is never trusted past its reconcile), once per reviewer.
    await lane.reconcile()
    assert sorted(lane.permission_requests()[len(asked):]) == ["maintainer", "stranger", "writer"]


def test_the_decision_counts_only_reviewers_at_the_floor() -> None:
    from bot.github.models import PullReview
    from bot.queue.service import review_of

    held: dict[str, Any] = {"admin": "admin", "maint": "maintain", "w": "write", "tri": "triage", "r": "read"}
    for login in ("admin", "maint", "w"):
        assert review_of([PullReview(1, login, "APPROVED")], held).decision == "approved"
    for login in ("tri", "r", "unknown"):  # `unknown` was never looked up: it does not count
        found = review_of([PullReview(1, login, "APPROVED")], held)
        assert (found.decision, found.uncounted_approvals) == ("pending", (login,))
    mixed = review_of([
        PullReview(1, "w", "APPROVED"), PullReview(2, "r", "CHANGES_REQUESTED"), PullReview(3, "tri", "APPROVED"),
        PullReview(4, "tri", "COMMENTED"), PullReview(5, "r", "COMMENTED"),
    ], held)
    assert (mixed.decision, mixed.uncounted_approvals, mixed.uncounted_changes) == ("approved", ("tri",), ("r",))
    # A dismissed review is nobody's decision: nothing to count or to report.
    gone = review_of([PullReview(1, "r", "APPROVED"), PullReview(2, "r", "DISMISSED")], held)
    assert (gone.decision, gone.uncounted_approvals) == ("pending", ())


def test_the_note_names_reviewers_and_counts_the_rest() -> None:
    assert messages.queue_reviews_not_counted(["@a"], [], floor="write") == (
        "1 approval from @a did not count: reviewers need write access to the repository."
    )
    names = [f"@u{i}" for i in range(7)]
    text = messages.queue_reviews_not_counted(names[:2], names, floor="write")
    assert text.startswith("2 approvals from @u0 and @u1 and 7 change requests from @u0, @u1, @u2, @u3, @u4 and 2 more")
