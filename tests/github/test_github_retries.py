"""Retries: 5xx, rate limits (Retry-After, x-ratelimit-reset), network failures; nothing really sleeps."""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from bot.github import GitHubGateway, GitHubUnavailable, NotFound, PermissionDenied, RateLimited
from tests.github.harness import APP_ID, BASE_URL, INSTALLATION_ID, AppKey, FakeTime, mount_mint

REPO_URL = f"{BASE_URL}/repos/octo/hello"
REPO = {"id": 1, "name": "hello", "full_name": "octo/hello", "owner": {"login": "octo"}, "default_branch": "main"}
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)


def ok() -> httpx.Response:
    return httpx.Response(200, json=REPO)


async def test_502_then_200_succeeds(gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.Response(502, text="<html>Bad gateway</html>"), ok()]

    found = await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert found.default_branch == "main"
    assert route.call_count == 2
    assert clock.sleeps == [1.0]


async def test_server_errors_back_off_and_give_up(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL).respond(503, json={"message": "Service Unavailable"})

    with pytest.raises(GitHubUnavailable) as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert caught.value.status == 503
    assert route.call_count == 5
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_secondary_rate_limit_with_retry_after_waits_that_long(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [
        httpx.Response(403, headers={"Retry-After": "7"}, json={"message": SECONDARY}),
        ok(),
    ]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [7.0]
    assert route.call_count == 2


async def test_retry_after_zero_does_not_wait_a_minute(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "0"}, json={"message": SECONDARY}), ok()]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [0.0]


async def test_retry_after_as_an_http_date(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    when = format_datetime(clock.now() + timedelta(seconds=12), usegmt=True)
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.Response(429, headers={"Retry-After": when}, json={"message": "slow down"}), ok()]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [12.0]


async def test_x_ratelimit_reset_is_honoured(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    reset = int(clock.now().timestamp()) + 30
    route = mock_github.get(REPO_URL)
    route.side_effect = [
        httpx.Response(
            403,
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            json={"message": "API rate limit exceeded for installation ID 7001."},
        ),
        ok(),
    ]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [31.0]  # until the reset, plus a second for clock skew
    assert clock.now().timestamp() > reset


async def test_a_reset_far_away_is_raised_not_slept_through(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    reset = int(clock.now().timestamp()) + 1800
    mock_github.get(REPO_URL).respond(
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        json={"message": "API rate limit exceeded for installation ID 7001."},
    )

    with pytest.raises(RateLimited) as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert caught.value.retry_after == 1801.0
    assert clock.sleeps == []


async def test_secondary_limit_without_a_wait_waits_one_minute(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.Response(403, json={"message": SECONDARY}), ok()]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [60.0]


async def test_rate_limit_retries_are_bounded(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL).respond(429, headers={"Retry-After": "3"}, json={"message": SECONDARY})

    with pytest.raises(RateLimited) as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert route.call_count == 5
    assert clock.sleeps == [3.0] * 4
    assert caught.value.retry_after == 3.0


async def test_a_plain_403_is_permission_denied_at_once(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL).respond(
        403, headers={"x-ratelimit-remaining": "4000"}, json={"message": "Resource not accessible by integration"}
    )

    with pytest.raises(PermissionDenied, match="Resource not accessible by integration"):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert route.call_count == 1
    assert clock.sleeps == []


async def test_connection_error_then_success(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.ConnectError("connection refused"), ok()]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert route.call_count == 2
    assert clock.sleeps == [1.0]


async def test_timeouts_are_retried(gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slower"), ok()]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [1.0, 2.0]


async def test_network_failures_that_outlast_the_retries(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mock_github.get(REPO_URL).mock(side_effect=httpx.ConnectError("connection refused"))

    with pytest.raises(GitHubUnavailable, match="ConnectError") as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_not_found_is_not_retried(gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime) -> None:
    route = mock_github.get(REPO_URL).respond(404, json={"message": "Not Found"})

    with pytest.raises(NotFound):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert route.call_count == 1


async def test_the_token_mint_is_retried_too(app_key: AppKey, clock: FakeTime, mock_github: respx.MockRouter) -> None:
    mint_route = mock_github.post(f"{BASE_URL}/app/installations/9/access_tokens")
    mint_route.side_effect = [
        httpx.Response(502),
        httpx.Response(201, json={"token": "ghs_fresh", "expires_at": "2026-03-01T13:00:00Z"}),
    ]
    mock_github.get(REPO_URL).respond(json=REPO)
    async with GitHubGateway(APP_ID, app_key.private_pem, sleep=clock.sleep, now=clock.now) as gw:
        await gw.get_repository(9, "octo", "hello")

    assert clock.sleeps == [1.0]


async def test_rate_limit_remaining_is_recorded_per_installation(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(REPO_URL).respond(json=REPO, headers={"x-ratelimit-remaining": "4321"})
    mock_github.get(f"{REPO_URL}/collaborators/ann/permission").respond(
        404, json={"message": "Not Found"}, headers={"x-ratelimit-remaining": "4320"}
    )

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    assert gateway.rate_limit_remaining == {INSTALLATION_ID: 4321}
    await gateway.get_collaborator_permission(INSTALLATION_ID, "octo", "hello", "ann")
    assert gateway.rate_limit_remaining == {INSTALLATION_ID: 4320}


async def test_retries_are_logged_without_credentials(
    gateway: GitHubGateway, mock_github: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [httpx.Response(502, json={"message": "Server Error"}), ok()]

    with caplog.at_level(logging.WARNING, logger="bot.github"):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert "GET /repos/octo/hello: 502 Server Error; retrying in 1.0 s (attempt 2 of 5)" in caplog.text


async def test_older_ghes_abuse_detection_wording_is_a_rate_limit(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    route = mock_github.get(REPO_URL)
    route.side_effect = [
        httpx.Response(403, json={"message": "You have triggered an abuse detection mechanism."}),
        ok(),
    ]

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert clock.sleeps == [60.0]
