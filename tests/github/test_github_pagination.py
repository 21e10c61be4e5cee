"""Link-header pagination (the recorded octokit exchange), and base URLs for GHES and a local sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel

from bot.github import GitHubError, GitHubGateway
from tests.github.harness import (
    APP_ID,
    BASE_URL,
    INSTALLATION_ID,
    AppKey,
    FakeTime,
    load_recorded,
    mount_mint,
    recorded_headers,
)


class Issue(BaseModel):
    number: int
    title: str


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)


def replay(entries: list[dict[str, Any]]) -> Any:
    by_target = {entry["path"]: entry for entry in entries}

    def handler(request: httpx.Request) -> httpx.Response:
        entry = by_target[request.url.raw_path.decode()]
        return httpx.Response(entry["status"], json=entry["response"], headers=recorded_headers(entry))

    return handler


async def test_paginate_follows_recorded_link_headers(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    entries = load_recorded("paginate-issues.json")
    route = mock_github.get(host="api.github.com", path__regex=r"/(repos|repositories)/").mock(
        side_effect=replay(entries)
    )

    issues = [
        issue
        async for issue in gateway.paginate(
            INSTALLATION_ID, "/repos/octokit-fixture-org/paginate-issues/issues", model=Issue, per_page=3
        )
    ]

    expected = [item["number"] for entry in entries for item in entry["response"]]
    assert [i.number for i in issues] == expected
    assert len(issues) == 13
    assert [c.request.url.raw_path.decode() for c in route.calls] == [e["path"] for e in entries]


async def test_paginate_stops_when_the_caller_does(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    route = mock_github.get(host="api.github.com", path__regex=r"/(repos|repositories)/").mock(
        side_effect=replay(load_recorded("paginate-issues.json"))
    )

    async for issue in gateway.paginate(
        INSTALLATION_ID, "/repos/octokit-fixture-org/paginate-issues/issues", model=Issue, per_page=3
    ):
        if issue.number == 11:
            break

    assert route.call_count == 1


def comment(n: int) -> dict[str, Any]:
    return {
        "id": n,
        "body": f"comment {n}",
        "user": {"login": "octocat", "type": "User"} if n != 3 else None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
        "html_url": f"https://github.com/octo/hello/issues/5#issuecomment-{n}",
        "author_association": "MEMBER",
    }


async def test_list_issue_comments_reads_every_page(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    first = f"{BASE_URL}/repos/octo/hello/issues/5/comments"
    second = f"{BASE_URL}/repositories/1/issues/5/comments?per_page=100&page=2"
    mock_github.get(first, params={"per_page": "100"}).respond(
        json=[comment(1), comment(2)], headers={"Link": f'<{second}>; rel="next", <{second}>; rel="last"'}
    )
    mock_github.get(second).respond(json=[comment(3)], headers={"Link": f'<{first}?per_page=100>; rel="first"'})

    comments = await gateway.list_issue_comments(INSTALLATION_ID, "octo", "hello", 5)

    assert [c.id for c in comments] == [1, 2, 3]
    assert comments[0].author == "octocat"
    assert comments[0].author_type == "User"
    assert comments[2].author == "ghost"
    assert comments[1].body == "comment 2"
    assert comments[0].updated_at.isoformat() == "2026-01-02T00:00:00+00:00"


async def test_pagination_never_follows_a_link_to_another_host(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(f"{BASE_URL}/repos/octo/hello/issues/5/comments").respond(
        json=[comment(1)], headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'}
    )

    with pytest.raises(GitHubError, match="another origin"):
        await gateway.list_issue_comments(INSTALLATION_ID, "octo", "hello", 5)


async def test_items_key_reads_wrapped_listings(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{BASE_URL}/repos/octo/hello/commits/abc/check-runs").respond(
        json={"total_count": 1, "check_runs": [{"id": 9, "name": "review-queue"}]}
    )

    class CheckRun(BaseModel):
        id: int
        name: str

    runs = [
        r
        async for r in gateway.paginate(
            INSTALLATION_ID, "/repos/octo/hello/commits/abc/check-runs", model=CheckRun, items_key="check_runs"
        )
    ]

    assert runs == [CheckRun(id=9, name="review-queue")]


@pytest.mark.parametrize("base_url", ["https://ghe.example.com/api/v3", "http://127.0.0.1:8765"])
async def test_other_base_urls(base_url: str, app_key: AppKey, clock: FakeTime, mock_github: respx.MockRouter) -> None:
    mint = mount_mint(mock_github, clock, base_url=base_url)
    first = f"{base_url}/repos/octo/hello/issues/5/comments"
    second = f"{base_url}/repositories/1/issues/5/comments?page=2"
    mock_github.get(first).respond(json=[comment(1)], headers={"Link": f'<{second}>; rel="next"'})
    mock_github.get(second).respond(json=[comment(2)])
    installation = mock_github.get(f"{base_url}/repos/octo/hello/installation").respond(json={"id": INSTALLATION_ID})

    async with GitHubGateway(
        APP_ID, app_key.private_pem, base_url=base_url + "/", sleep=clock.sleep, now=clock.now
    ) as gw:
        assert await gw.get_installation_for_repo("octo", "hello") == INSTALLATION_ID
        comments = await gw.list_issue_comments(INSTALLATION_ID, "octo", "hello", 5)

    assert [c.id for c in comments] == [1, 2]
    assert len(mint.issued) == 1
    assert installation.calls.last.request.headers["authorization"].startswith("Bearer ")
