"""The brief's refresh at the HTTP seam: the real `GitHubGateway` (githubkit) against a respx-mocked GitHub, counting
every request: one `PATCH pulls/N` when the text changed, none at all when it did not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.features import Features
from bot.github import GitHubGateway
from bot.prs import brief
from bot.queue.facts import FactStore
from bot.root import compose
from bot.store.db import Store
from bot.store.models import PullRequest, Run, RunState, Trigger, utcnow
from bot.store.pulls import PullRequestStore
from tests.github.harness import FakeTime, TokenMint
from tests.prs.support import success
from tests.support import make_settings

BASE_URL = "https://ghe.example.com/api/v3"
APP_ID = 4242
INSTALLATION = 77
OWNER, REPO = "octo", "hello"
NUMBER = 101
HEAD = "c" * 40


@dataclass
class Seam:
    services: Features
    gateway: GitHubGateway
    router: respx.MockRouter
    patch: respx.Route
    row: PullRequest

    def requests(self) -> list[str]:
        """Every request Kickoff sent to GitHub but for minting installation tokens."""
        return [f"{call.request.method} {call.request.url.path}" for call in self.router.calls
                if not call.request.url.path.endswith("/access_tokens")]


@pytest.fixture
async def seam(database_url: str) -> AsyncIterator[Seam]:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    clock = FakeTime()
    store = Store(database_url)
    await store.migrate()
    with respx.mock(base_url=BASE_URL, assert_all_mocked=True) as router:
        router.post(f"/app/installations/{INSTALLATION}/access_tokens").mock(side_effect=TokenMint(clock))
        patch = router.patch(f"/repos/{OWNER}/{REPO}/pulls/{NUMBER}").respond(json={"number": NUMBER})
        async with GitHubGateway(APP_ID, pem, base_url=BASE_URL, sleep=clock.sleep, now=clock.now,
                                 monotonic=clock.monotonic) as gateway:
            services = compose(make_settings(database_url, APP_ID=APP_ID), store, github=gateway)
            row = await _kickoff_pull_request(store)
            try:
                yield Seam(services, gateway, router, patch, row)
            finally:
                await store.close()


async def _kickoff_pull_request(store: Store) -> PullRequest:
    now = utcnow()
    async with store.sessions.begin() as session:
        trigger = Trigger(delivery_id="d-1", seq=0, installation_id=INSTALLATION, repository=f"{OWNER}/{REPO}",
                          issue_number=7, source="label", task="fix", sender="ann", created_at=now)
        session.add(trigger)
        await session.flush()
        run = Run(trigger_id=trigger.id, installation_id=INSTALLATION, repository=f"{OWNER}/{REPO}", issue_number=7,
                  task="fix", agent="ok", state=RunState.SUCCEEDED, branch="kickoff/7-fix-ok-1", base_branch="main",
                  pr_number=NUMBER, created_at=now, updated_at=now)
        session.add(run)
        await session.flush()
        run.result = success(run, head_sha=HEAD).model_dump_json()
        context = brief.BriefContext(issue_title="Crash on start", sender="ann", output="pr")
        row = PullRequest(installation_id=INSTALLATION, repository=f"{OWNER}/{REPO}", number=NUMBER, run_id=run.id,
                          trigger_id=trigger.id, issue_number=7, agent="ok", title="fix", head_ref=run.branch,
                          head_sha=HEAD, base_ref="main", state="open", brief_context=context.to_json(),
                          created_at=now, updated_at=now)
        session.add(row)
    return row


async def test_a_refresh_patches_only_when_the_text_changed(seam: Seam) -> None:
    services, github = seam.services, seam.gateway
    # First refresh: nothing was written by this process yet (an adopted pull request), so the brief is written.
    assert await brief.refresh_brief(services, github, seam.row) is True
    assert seam.requests() == [f"PATCH /api/v3/repos/{OWNER}/{REPO}/pulls/{NUMBER}"]
    first = json.loads(seam.patch.calls.last.request.content)["body"]
    assert "CI ⏳ not concluded yet" in first
    assert await brief.refresh_brief(services, github, seam.row) is False
    assert len(seam.requests()) == 1  # nothing changed: not a single request

    facts = FactStore(services.store)
    await facts.observe_check_run(f"{OWNER}/{REPO}", HEAD, 1, ("tests", "in_progress", None, 99))
    assert await brief.refresh_brief(services, github, seam.row) is False  # still not concluded
    await facts.observe_check_run(f"{OWNER}/{REPO}", HEAD, 1, ("tests", "completed", "success", 99))
    await facts.observe_check_run(f"{OWNER}/{REPO}", HEAD, 2, ("review-queue", "completed", "neutral", APP_ID))
    assert await brief.refresh_brief(services, github, seam.row) is True
    assert len(seam.requests()) == 2
    second = json.loads(seam.patch.calls.last.request.content)["body"]
    assert second == first.replace("CI ⏳ not concluded yet", "CI ✅ passed")
    for _ in range(3):
        assert await brief.refresh_brief(services, github, seam.row) is False
    assert len(seam.requests()) == 2
    stored = await PullRequestStore(services.store).get(seam.row.id)
    assert stored is not None
    assert stored.body_sha256 == brief.digest(second)
