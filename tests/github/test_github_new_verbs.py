"""The verbs that replaced features' raw requests, and the repository-scoped gateway, at the HTTP seam."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from bot.github import AppIdentity, GitHubGateway, GitHubUnavailable, GitHubUser, Issue, NotFound, RepoGateway
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, credential, mount_mint

REPO_URL = f"{BASE_URL}/repos/octo/hello"
ISSUE = {
    "number": 12,
    "title": "Crash on start",
    "body": "It crashes.",
    "user": {"login": "ann", "id": 5, "type": "User"},
    "state": "open",
    "updated_at": "2026-03-01T11:00:00Z",
    "html_url": "https://github.com/octo/hello/issues/12",
    "labels": [{"name": "bug"}],
}


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


async def test_get_issue(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{REPO_URL}/issues/12").respond(json=ISSUE)

    issue = await gateway.get_issue(INSTALLATION_ID, "octo", "hello", 12)

    assert issue == Issue(
        number=12, title="Crash on start", body="It crashes.", author="ann", author_type="User",
        updated_at=datetime(2026, 3, 1, 11, 0, tzinfo=UTC), state="open", is_pull_request=False,
        html_url="https://github.com/octo/hello/issues/12",
    )


async def test_get_issue_of_a_pull_request_without_a_user_or_body(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(f"{REPO_URL}/issues/13").respond(
        json={"number": 13, "title": "Fix", "body": None, "user": None, "pull_request": {"url": "x"}}
    )

    issue = await gateway.get_issue(INSTALLATION_ID, "octo", "hello", 13)

    assert (issue.body, issue.author, issue.author_type, issue.is_pull_request) == ("", None, "User", True)


async def test_get_issue_that_does_not_exist(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{REPO_URL}/issues/404").respond(404, json={"message": "Not Found"})

    with pytest.raises(NotFound):
        await gateway.get_issue(INSTALLATION_ID, "octo", "hello", 404)


async def test_list_labels_follows_the_pages(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    second = f"{REPO_URL}/issues/12/labels?per_page=100&page=2"
    mock_github.get(f"{REPO_URL}/issues/12/labels", params={"page": "2"}).respond(json=[{"name": "agent:fix"}])
    first = mock_github.get(f"{REPO_URL}/issues/12/labels", params={"per_page": "100"}).respond(
        json=[{"id": 1, "name": "bug", "color": "f00"}], headers={"link": f'<{second}>; rel="next"'}
    )

    assert await gateway.list_labels(INSTALLATION_ID, "octo", "hello", 12) == ["bug", "agent:fix"]
    assert first.call_count == 1


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("add_reaction_to_issue", "/issues/12/reactions"),
        ("add_reaction_to_review_comment", "/pulls/comments/12/reactions"),
    ],
)
async def test_reactions(gateway: GitHubGateway, mock_github: respx.MockRouter, verb: str, path: str) -> None:
    route = mock_github.post(f"{REPO_URL}{path}").respond(201, json={"id": 1, "content": "eyes"})

    await getattr(gateway, verb)(INSTALLATION_ID, "octo", "hello", 12, "eyes")

    assert sent_json(route) == {"content": "eyes"}
    assert credential(route.calls.last.request).startswith("ghs_test")  # as the installation


async def test_get_user_escapes_the_login(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(url__regex=r".*/users/.*").respond(
        json={"login": "kickoff[bot]", "id": 4242, "type": "Bot", "site_admin": False}
    )

    assert await gateway.get_user(INSTALLATION_ID, "kickoff[bot]") == GitHubUser(4242, "kickoff[bot]", "Bot")
    assert route.calls.last.request.url.raw_path == b"/users/kickoff%5Bbot%5D"


async def test_get_app_asks_github_once_as_the_app(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(f"{BASE_URL}/app").respond(json={"id": 424242, "slug": "kickoff", "name": "Kickoff"})

    first, *others = await asyncio.gather(*(gateway.get_app() for _ in range(3)))
    again = await gateway.get_app()

    assert first == again == AppIdentity(424242, "kickoff", "Kickoff")
    assert others == [first, first]
    assert first.bot_login == "kickoff[bot]"
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"].startswith("Bearer ")  # the JWT, not a token


async def test_get_app_keeps_no_failure(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(f"{BASE_URL}/app")
    route.side_effect = [
        *[httpx.Response(502, json={"message": "Bad Gateway"})] * 5,
        httpx.Response(200, json={"id": 1, "slug": "kickoff"}),
    ]

    with pytest.raises(GitHubUnavailable):
        await gateway.get_app()
    assert (await gateway.get_app()).slug == "kickoff"
    assert route.call_count == 6


async def test_list_hook_deliveries_reads_pages_only_as_far_as_asked(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    def attempt(n: int) -> dict[str, Any]:
        return {"id": n, "guid": f"g{n}", "delivered_at": "2026-03-01T11:00:00Z", "status_code": 502,
                "status": "failed", "event": "issues", "action": "opened", "redelivery": False}

    second = mock_github.get(f"{BASE_URL}/app/hook/deliveries", params={"cursor": "c2"}).respond(json=[attempt(1)])
    mock_github.get(f"{BASE_URL}/app/hook/deliveries").respond(
        json=[attempt(3), attempt(2)],
        headers={"link": f'<{BASE_URL}/app/hook/deliveries?per_page=100&cursor=c2>; rel="next"'},
    )

    seen = []
    async for delivery in gateway.list_hook_deliveries():
        seen.append(delivery)
        if delivery.id == 2:
            break

    assert [(d.id, d.guid, d.key, d.succeeded) for d in seen] == [(3, "g3", "issues.opened", False), (2, "g2",
                                                                  "issues.opened", False)]
    assert second.call_count == 0
    assert [d.id async for d in gateway.list_hook_deliveries()] == [3, 2, 1]


async def test_redeliver_hook_delivery(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.post(f"{BASE_URL}/app/hook/deliveries/77/attempts").respond(202, json={})

    await gateway.redeliver_hook_delivery(77)

    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"].startswith("Bearer ")


async def test_for_repo_binds_the_installation_and_the_repository(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(f"{REPO_URL}/issues/12").respond(json=ISSUE)
    labels = mock_github.get(f"{REPO_URL}/issues/12/labels").respond(json=[{"name": "bug"}])
    comment = mock_github.post(f"{REPO_URL}/issues/12/comments").respond(201, json={"id": 99})
    pull = mock_github.patch(f"{REPO_URL}/pulls/12").respond(200, json={})

    repo = gateway.for_repo(INSTALLATION_ID, "octo/hello")

    assert (repo.installation_id, repo.owner, repo.name, repo.full_name) == (INSTALLATION_ID, "octo", "hello",
                                                                            "octo/hello")
    assert (await repo.get_issue(12)).title == "Crash on start"
    assert await repo.list_labels(12) == ["bug"]
    assert await repo.comment(12, "on it") == 99
    await repo.update_pull_request(12, title="t")
    assert sent_json(comment) == {"body": "on it"}
    assert sent_json(pull) == {"title": "t"}
    assert labels.call_count == 1


@pytest.mark.parametrize("name", ["hello", "octo/", "/hello", "octo/hello/x", ""])
def test_for_repo_wants_owner_and_name(gateway: GitHubGateway, name: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        gateway.for_repo(INSTALLATION_ID, name)


def test_for_repo_is_a_repo_gateway(gateway: GitHubGateway) -> None:
    assert gateway.for_repo(1, "octo/hello") == RepoGateway(gateway, 1, "octo", "hello")
