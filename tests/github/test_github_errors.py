"""GitHub's error bodies (recorded ones and the documented shapes) become our exceptions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from bot.github import (
    Conflict,
    GitHubError,
    GitHubGateway,
    NotFound,
    PermissionDenied,
    Unauthorized,
    ValidationFailed,
)
from tests.github.harness import BASE_URL, INSTALLATION_ID, FakeTime, load_recorded, mount_mint, recorded_headers

EXPECTED: dict[int, type[GitHubError]] = {
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    422: ValidationFailed,
}


@pytest.fixture(autouse=True)
def _tokens(mock_github: respx.MockRouter, clock: FakeTime) -> None:
    mount_mint(mock_github, clock)


@pytest.mark.parametrize("entry", load_recorded("errors.json"), ids=lambda e: f"{e['method']} {e['status']}")
async def test_recorded_error_bodies_map_to_our_exceptions(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime, entry: dict[str, Any]
) -> None:
    route = mock_github.request(entry["method"].upper(), f"{BASE_URL}{entry['path']}").respond(
        entry["status"], json=entry["response"], headers=recorded_headers(entry)
    )

    with pytest.raises(GitHubError) as caught:
        await gateway.request(INSTALLATION_ID, entry["method"], entry["path"], json=entry["body"])

    error = caught.value
    assert type(error) is EXPECTED[entry["status"]]
    assert error.status == entry["status"]
    assert error.message == entry["response"]["message"]
    assert error.documentation_url == entry["response"]["documentation_url"]
    assert error.request_id == entry["headers"]["x-github-request-id"]
    assert route.call_count == 1
    assert clock.sleeps == []
    if isinstance(error, ValidationFailed):
        assert error.errors == entry["response"]["errors"]
        assert (
            str(error) == "POST /repos/octokit-fixture-org/errors/labels: 422 Validation Failed (Label color invalid)"
        )
    assert gateway.rate_limit_remaining[INSTALLATION_ID] == int(entry["headers"]["x-ratelimit-remaining"])


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"message": "Resource not accessible by integration"}),
        (404, {"message": "Not Found"}),
        (409, {"message": "Merge conflict"}),
        (410, {"message": "Issues are disabled for this repo"}),
        (422, {"message": "Validation Failed", "errors": ["a plain string error"]}),
    ],
)
async def test_documented_error_shapes(
    gateway: GitHubGateway, mock_github: respx.MockRouter, status: int, body: dict[str, Any]
) -> None:
    mock_github.post(f"{BASE_URL}/repos/octo/hello/issues/1/comments").respond(status, json=body)

    with pytest.raises(EXPECTED[status]) as caught:
        await gateway.comment(INSTALLATION_ID, "octo", "hello", 1, "hi")

    assert caught.value.message == body["message"]


async def test_app_level_401_is_unauthorized_without_minting(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    route = mock_github.get(f"{BASE_URL}/repos/octo/hello/installation").respond(
        401, json={"message": "'Expiration time' claim ('exp') is too far in the future"}
    )

    with pytest.raises(Unauthorized, match="Expiration time"):
        await gateway.get_installation_for_repo("octo", "hello")

    assert route.call_count == 1


async def test_a_body_that_is_not_json_still_maps(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{BASE_URL}/repos/octo/hello").respond(404, text="<html>nope</html>")

    with pytest.raises(NotFound, match="404 Not Found"):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")


async def test_an_unexpected_success_shape_is_a_github_error(
    gateway: GitHubGateway, mock_github: respx.MockRouter
) -> None:
    mock_github.get(f"{BASE_URL}/repos/octo/hello").respond(json={"id": "not a number"})

    with pytest.raises(GitHubError, match="unexpected shape") as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert "not a number" not in str(caught.value)


async def test_a_success_body_that_is_not_json(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.get(f"{BASE_URL}/repos/octo/hello").mock(return_value=httpx.Response(200, text="<html/>"))

    with pytest.raises(GitHubError, match="not JSON"):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
