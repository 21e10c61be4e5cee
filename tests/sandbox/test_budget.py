"""GitHub's request budget in the sandbox, and Kickoff's gateway reading it: ETags and 304s (not counted),
`x-ratelimit-*` headers that fall with each counted request, counts by endpoint, `/metrics`, and a queue sweep that
waits while an installation's budget is low."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.dashboard.routes import github_budget
from bot.demo.summary import request_budget
from bot.features import Features
from bot.github import GitHubGateway
from bot.metrics import DatabaseFigures, Metrics
from bot.root import compose
from bot.sandbox import Sandbox, SandboxServer
from bot.store.db import Store
from bot.store.models import PullRequest, utcnow
from tests.sandbox.support import OWNER, REPO
from tests.support import make_settings

FULL = f"{OWNER}/{REPO}"
REPO_ENDPOINT = "GET /repos/{owner}/{repo}"


@dataclass
class Served:
    sandbox: Sandbox
    url: str
    app_id: int
    private_key: str
    installation_id: int

    def kickoff(self) -> list[str]:
        return [r.endpoint for r in self.sandbox.requests if r.kind == "rest" and r.app_id == self.app_id]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    sb = Sandbox(tmp_path / "github", retry_delays=())
    try:
        async with SandboxServer(sb) as base:
            creds = await sb.aio.create_app("Kickoff")
            await sb.aio.create_repo(OWNER, REPO, {"README.md": "hi\n"})
            installation_id = await sb.aio.install(creds.app_id, OWNER)
            yield Served(sb, base, creds.app_id, creds.private_key_pem, installation_id)
    finally:
        violations = sb.violations
        sb.close()
    assert not violations, "\n".join(str(v) for v in violations)


async def test_a_matching_if_none_match_is_a_304_that_costs_nothing(served: Served) -> None:
    token = await served.sandbox.aio.installation_token(served.installation_id)
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=served.url, trust_env=False, headers=headers) as gh:
        first = await gh.get(f"/repos/{FULL}")
        etag = first.headers["etag"]
        again = await gh.get(f"/repos/{FULL}", headers={"If-None-Match": etag})
        stale = await gh.get(f"/repos/{FULL}", headers={"If-None-Match": 'W/"something-else"'})
        write = await gh.post(f"/repos/{FULL}/issues", json={"title": "Crash"})
        left = (await gh.get("/rate_limit")).json()["resources"]["core"]
        left_again = (await gh.get("/rate_limit")).json()["resources"]["core"]

    assert first.status_code == 200
    assert etag.startswith('W/"')
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert stale.status_code == 200
    assert write.status_code == 201
    assert "etag" not in write.headers
    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in (first, again, stale, write)]
    assert [remaining[0] - r for r in remaining] == [0, 0, 1, 2]  # the 304 was not counted
    assert first.headers["x-ratelimit-limit"] == "5000"
    assert int(first.headers["x-ratelimit-used"]) == 5000 - remaining[0]
    assert left["remaining"] == left_again["remaining"] == remaining[3]  # asking what is left is free

    rest = [r for r in served.sandbox.requests if r.kind == "rest" and r.installation_id == served.installation_id]
    assert [r.endpoint for r in rest] == [REPO_ENDPOINT] * 3 + ["POST /repos/{owner}/{repo}/issues"] + [
        "GET /rate_limit"] * 2
    budget = request_budget(rest[:4])
    assert (budget["counted"], budget["reads"], budget["writes"], budget["not_modified"]) == (3, 2, 1, 1)
    assert budget["by_endpoint"][REPO_ENDPOINT] == {"counted": 2, "not_modified": 1}


async def test_the_gateway_revalidates_and_metrics_export_the_rate_limit_left(served: Served) -> None:
    async with GitHubGateway(served.app_id, served.private_key, base_url=served.url) as gateway:
        for _ in range(3):
            repository = await gateway.get_repository(served.installation_id, OWNER, REPO)
        assert repository.default_branch == "main"
        metrics = Metrics()
        metrics.update(DatabaseFigures(), gateway)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics.render().decode())
            for s in family.samples
        }

    budget = served.sandbox.engine.rate_limits.budget(("installation", served.installation_id))
    installation = (("installation", str(served.installation_id)),)
    assert samples[("kickoff_github_rate_limit_remaining", installation)] == budget.remaining
    assert samples[("kickoff_github_rate_limit", installation)] == 5000
    by_endpoint = "kickoff_github_endpoint_requests_total"
    repo_label = (("endpoint", "/repos/{owner}/{repo}"), ("method", "GET"))
    assert samples[(by_endpoint, (*repo_label, ("status", "200")))] == 1
    assert samples[(by_endpoint, (*repo_label, ("status", "304")))] == 2
    assert [r.status for r in served.sandbox.requests if r.endpoint == REPO_ENDPOINT] == [200, 304, 304]


@pytest.fixture
async def kickoff(served: Served, tmp_path: Path) -> AsyncIterator[Features]:
    url = f"sqlite:///{tmp_path}/kickoff.db"
    store = Store(url)
    await store.migrate()
    gateway = GitHubGateway(served.app_id, served.private_key, base_url=served.url)
    now = utcnow()
    async with store.sessions.begin() as session:
        session.add(PullRequest(installation_id=served.installation_id, repository=FULL, number=1, agent="claude",
                                title="fix", head_ref="kickoff/1-fix", head_sha="a" * 40, base_ref="main",
                                state="open", created_at=now, updated_at=now))
    try:
        yield compose(make_settings(url, APP_ID=served.app_id), store, github=gateway)
    finally:
        await gateway.aclose()
        await store.close()


async def test_the_sweep_waits_while_the_budget_is_low_and_the_dashboard_says_so(
    served: Served, kickoff: Features
) -> None:
    limits = served.sandbox.engine.rate_limits
    budget = limits.budget(("installation", served.installation_id))
    budget.used = budget.limit - 300  # 300 of 5,000 left: below a tenth
    await kickoff.require_github().get_repository(served.installation_id, OWNER, REPO)
    before = len(served.kickoff())

    assert await kickoff.queue.sweep() == 0
    assert served.kickoff()[before:] == []  # not one request: the sweep waited
    assert served.installation_id in kickoff.queue.deferred
    (shown,) = github_budget(kickoff)
    assert shown == {"installation": served.installation_id, "remaining": 299, "limit": 5000, "low": True,
                     "sweep_deferred": True}

    budget.used = 0  # the hour reset
    await kickoff.require_github().get_repository(served.installation_id, OWNER, REPO)  # a 304 that says so
    await kickoff.queue.sweep()
    assert served.installation_id not in kickoff.queue.deferred
    assert "GET /repos/{owner}/{repo}/pulls/{number}" in served.kickoff()  # the queue was read again
