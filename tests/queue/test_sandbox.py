"""End to end in the sandbox: real git, real webhooks into a real Kickoff server, the sandbox's CI running a real
command. Three Kickoff pull requests, all approved: the head merges (queue.merge: auto), the next is brought up to
date with the new base by GitHub's update-branch, re-checked by CI and merged in turn. Never two `success` checks at
once, and the GitHub writes per advance are counted and bounded."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox import Sandbox, SandboxServer
from bot.store.db import Store
from bot.store.models import PullRequest, utcnow
from bot.web import create_app
from tests.support import ServerThread, make_settings

pytestmark = pytest.mark.slow

OWNER, REPO = "octo", "demo"
FULL = f"{OWNER}/{REPO}"
CONFIG = "queue:\n  merge: auto\n  merge_method: squash\n"
WRITE = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path / "github", retry_delays=(0.1, 0.5))
    try:
        yield sb
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "fidelity violations:\n" + "\n".join(str(v) for v in violations)


async def _insert_rows(database_url: str, installation_id: int, pulls: list[dict[str, Any]]) -> None:
    """What the pull-request feature records when it opens a run's pull request."""
    store = Store(database_url)
    try:
        now = utcnow()
        async with store.sessions.begin() as session:
            for pull in pulls:
                session.add(PullRequest(
                    installation_id=installation_id, repository=FULL, number=pull["number"], agent="claude",
                    title=pull["title"], head_ref=pull["head"]["ref"], head_sha=pull["head"]["sha"], base_ref="main",
                    state="open", created_at=now, updated_at=now,
                ))
    finally:
        await store.close()


def test_three_pull_requests_merge_one_at_a_time(
    sandbox: Sandbox, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with SandboxServer(sandbox) as api:
        creds = sandbox.create_app("Kickoff")
        sandbox.create_repo(OWNER, REPO, {"README.md": "# demo\n", ".github/kickoff.yml": CONFIG,
                                          "check.py": "import sys\nsys.exit(0)\n"})
        installation_id = sandbox.install(creds.app_id, OWNER)
        sandbox.set_ci(OWNER, REPO, [sys.executable, "check.py"])
        sandbox.set_permission(OWNER, REPO, "alice", "write")  # only a writer's approval counts
        settings = make_settings(
            database_url, APP_ID=creds.app_id, PRIVATE_KEY=creds.private_key_pem,
            WEBHOOK_SECRET=creds.webhook_secret, GITHUB_API_URL=api, KICKOFF_QUEUE_SWEEP_SECONDS=1,
        )
        token = sandbox.installation_token(installation_id)
        with ServerThread(create_app(settings)) as kickoff, httpx.Client(
            base_url=api, headers={"Authorization": f"token {token}"}, trust_env=False, timeout=30
        ) as gh:
            sandbox.set_webhook(creds.app_id, f"{kickoff.url}/api/github/webhooks")

            def pull(number: int) -> dict[str, Any]:
                data: dict[str, Any] = gh.get(f"/repos/{FULL}/pulls/{number}").json()
                return data

            def queue_checks(sha: str) -> list[dict[str, Any]]:
                runs = gh.get(f"/repos/{FULL}/commits/{sha}/check-runs").json()["check_runs"]
                return [run for run in runs if run["name"] == "review-queue"]

            numbers = []
            for index in range(3):
                branch = f"kickoff/1-fix-agent{index}-{index + 1}"
                sandbox.push_commit(OWNER, REPO, branch, {f"feature{index}.txt": f"change {index}\n"})
                numbers.append(sandbox.open_pull(OWNER, REPO, branch, "main", f"fix: part {index} [agent{index}]"))
            asyncio.run(_insert_rows(database_url, installation_id, [pull(n) for n in numbers]))
            sandbox.wait_idle()

            def all_checked() -> bool:
                return all(queue_checks(pull(n)["head"]["sha"]) for n in numbers)

            eventually(all_checked, 30, "a review-queue check on every pull request")
            first = {n: queue_checks(pull(n)["head"]["sha"])[0]["output"]["title"] for n in numbers}
            assert sorted(first.values())[0] == "Next for review", first

            successes_seen: list[list[int]] = []

            def merged_count() -> int:
                open_heads = {n: pull(n) for n in numbers}
                successes = [
                    n for n, data in open_heads.items() if not data["merged"]
                    and any(c["conclusion"] == "success" for c in queue_checks(data["head"]["sha"])[:1])
                ]
                successes_seen.append(successes)
                return sum(1 for data in open_heads.values() if data["merged"])

            for number in numbers:
                sandbox.approve(OWNER, REPO, number, "alice")
            eventually(lambda: merged_count() == 3, 120, "all three pull requests to merge, one at a time")
            sandbox.wait_idle()

        assert max(len(s) for s in successes_seen) <= 1, "two review-queue successes at once"
        requests = [r for r in sandbox.requests if r.installation_id == installation_id and r.kind == "rest"]
        merges = [i for i, r in enumerate(requests) if r.method == "PUT" and r.path.endswith("/merge")]
        assert len(merges) == 3
        updates = [r for r in requests if r.method == "PUT" and r.path.endswith("/update-branch")]
        assert len(updates) == 2  # the second and third head, each once
        per_advance = [
            sum(1 for r in requests[start + 1 : end + 1] if r.method in WRITE)
            for start, end in pairwise(merges)
        ]
        reads = [
            sum(1 for r in requests[start + 1 : end + 1] if r.method == "GET")
            for start, end in pairwise(merges)
        ]
        with capsys.disabled():
            print(f"\nreview queue, GitHub writes per advance (merge to merge): {per_advance}; reads: {reads}")
        # An advance: the next head's checks (updating, waiting for CI, merge-ready, the others' positions),
        # one update-branch and one merge.
        assert all(count <= 12 for count in per_advance), per_advance
