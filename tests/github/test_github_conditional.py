"""Conditional requests at the HTTP seam: the gateway's ETag store, 304s, counts by endpoint, the rate-limit budget."""

from __future__ import annotations

import httpx
import pytest
import respx

from bot.github import GitHubGateway
from bot.github.transport import ConditionalCache, endpoint_of
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, mount_mint

REPO_URL = f"{BASE_URL}/repos/octo/hello"
PULL = {
    "number": 7, "state": "open", "title": "Fix", "body": "", "draft": False, "merged": False, "mergeable": True,
    "html_url": "https://github.com/octo/hello/pull/7", "user": {"login": "ann", "id": 5, "type": "User"},
    "head": {"ref": "fix", "sha": "a" * 40}, "base": {"ref": "main", "sha": "b" * 40},
}
ETAG = 'W/"abc123"'
OTHER_INSTALLATION = 7002


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)
    mount_mint(mock_github, clock, installation_id=OTHER_INSTALLATION)


def conditional_pull(request: httpx.Request) -> httpx.Response:
    """GitHub's behaviour: a matching If-None-Match is a 304 with no body, which costs nothing."""
    if request.headers.get("if-none-match") == ETAG:
        return httpx.Response(304, headers={"etag": ETAG, "x-ratelimit-remaining": "4990",
                                            "x-ratelimit-limit": "5000"})
    return httpx.Response(200, json=PULL, headers={"etag": ETAG, "x-ratelimit-remaining": "4990",
                                                   "x-ratelimit-limit": "5000"})


async def test_a_second_get_asks_if_none_match_and_a_304_answers_from_the_store(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.get(f"{REPO_URL}/pulls/7").mock(side_effect=conditional_pull)

    first = await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    second = await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)

    assert "if-none-match" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["if-none-match"] == ETAG
    assert second == first
    assert gateway.request_counts[("GET", 304)] == 1
    assert gateway.request_counts[("GET", 200)] == 1
    assert gateway.endpoint_counts[("GET", "/repos/{owner}/{repo}/pulls/{number}", 304)] == 1
    assert gateway.conditional.hits == 1


async def test_one_installation_never_revalidates_with_anothers_etag(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.get(f"{REPO_URL}/pulls/7").mock(side_effect=conditional_pull)

    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    await gateway.get_pull_request(OTHER_INSTALLATION, "octo", "hello", 7)

    assert [call.request.headers.get("if-none-match") for call in route.calls] == [None, None]


async def test_errors_and_answers_without_an_etag_are_not_kept(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.get(f"{REPO_URL}/pulls/7").mock(side_effect=[
        httpx.Response(200, json=PULL),  # no ETag: nothing to revalidate with
        httpx.Response(200, json=PULL, headers={"etag": ETAG}),
        httpx.Response(404, json={"message": "Not Found"}),  # a 404 drops what was kept
        httpx.Response(200, json=PULL, headers={"etag": ETAG}),
    ])

    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    with pytest.raises(Exception, match="Not Found"):
        await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)

    assert [call.request.headers.get("if-none-match") for call in route.calls] == [None, None, ETAG, None]


async def test_forget_response_makes_the_next_read_unconditional(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.get(f"{REPO_URL}/pulls/7").mock(side_effect=conditional_pull)

    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    gateway.forget_response(INSTALLATION_ID, "/repos/Octo/Hello/pulls/7")  # names compare case-insensitively
    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)

    assert [call.request.headers.get("if-none-match") for call in route.calls] == [None, None]


def test_the_store_is_bounded_per_installation_and_in_installations() -> None:
    cache = ConditionalCache(entries=2, installations=2, max_body=10)
    request = httpx.Request("GET", f"{REPO_URL}/pulls/1")

    def answer(body: bytes = b"{}") -> httpx.Response:
        return httpx.Response(200, content=body, headers={"etag": ETAG}, request=request)

    for n in (1, 2, 3):
        cache.put(1, f"/pulls/{n}", answer())
    assert [cache.get(1, f"/pulls/{n}") is not None for n in (1, 2, 3)] == [False, True, True]
    cache.put(2, "/pulls/1", answer())
    cache.put(3, "/pulls/1", answer())
    assert cache.get(1, "/pulls/3") is None  # the least recently used installation went
    cache.put(3, "/big", answer(b"x" * 11))
    assert cache.get(3, "/big") is None
    assert len(cache) == 2


def test_the_store_is_bounded_in_bytes() -> None:
    cache = ConditionalCache(max_bytes=25)
    request = httpx.Request("GET", f"{REPO_URL}/pulls/1")
    for installation in (1, 2, 3):
        cache.put(installation, "/pulls/1", httpx.Response(200, content=b"x" * 10, headers={"etag": ETAG},
                                                           request=request))
    assert (cache.get(1, "/pulls/1"), len(cache), cache.bytes) == (None, 2, 20)
    cache.forget_installation(2)
    assert (len(cache), cache.bytes) == (1, 10)


async def test_the_budget_is_low_below_a_tenth_of_the_limit(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(f"{REPO_URL}/pulls/7").mock(side_effect=[
        httpx.Response(200, json=PULL, headers={"x-ratelimit-remaining": "501", "x-ratelimit-limit": "5000"}),
        httpx.Response(200, json=PULL, headers={"x-ratelimit-remaining": "499", "x-ratelimit-limit": "5000"}),
    ])
    assert gateway.budget_low(INSTALLATION_ID) is False  # GitHub has not said yet

    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    assert gateway.budget_low(INSTALLATION_ID) is False
    await gateway.get_pull_request(INSTALLATION_ID, "octo", "hello", 7)
    assert gateway.budget_low(INSTALLATION_ID) is True
    assert (gateway.rate_limit_remaining[INSTALLATION_ID], gateway.rate_limit_limit[INSTALLATION_ID]) == (499, 5000)


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/repos/o/r/pulls/12/reviews", "/repos/{owner}/{repo}/pulls/{number}/reviews"),
    ("/repos/o/r/issues/comments/7", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("/repos/o/r/contents/.github/kickoff.yml", "/repos/{owner}/{repo}/contents/{path}"),
    ("/repos/o/r/commits/abc/check-runs", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("/repos/o/r/git/ref/heads/main", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("/repos/o/r/issues/3/labels/agent:fix", "/repos/{owner}/{repo}/issues/{number}/labels/{name}"),
    ("/app/installations/5/access_tokens", "/app/installations/{installation_id}/access_tokens"),
    ("/api/v3/repos/o/r", "/repos/{owner}/{repo}"),
    ("/app", "/app"),
])
def test_endpoints_are_route_templates(path: str, endpoint: str) -> None:
    assert endpoint_of(path, "/api/v3") == endpoint

