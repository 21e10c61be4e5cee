"""App JWT, installation tokens (minted once, refreshed early, re-minted on 401) and per-run tokens."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import jwt
import pytest
import respx

from bot.github import GitHubGateway, TokenScope, Unauthorized
from bot.github.auth import parse_token_response
from bot.settings import load_settings
from tests.github.harness import APP_ID, BASE_URL, INSTALLATION_ID, AppKey, FakeTime, credential, mount_mint

REPO_URL = f"{BASE_URL}/repos/octo/hello"
REPO = {"id": 1, "name": "hello", "full_name": "octo/hello", "owner": {"login": "octo"}, "default_branch": "main"}


async def test_a_token_is_minted_once_and_reused(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    clock.advance(50 * 60)  # still more than five minutes left
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert len(mint.issued) == 1
    assert mint.bodies == [None]  # the general token asks for everything the installation was granted
    assert [c.request.headers["authorization"] for c in repo.calls] == [f"token {mint.issued[0]}"] * 3


async def test_a_token_near_expiry_is_refreshed(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    clock.advance(56 * 60)  # four minutes left: too little to start a request with
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert len(mint.issued) == 2
    assert [credential(c.request) for c in repo.calls] == mint.issued


async def test_a_token_minted_with_little_life_left_is_not_reused(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock, lifetime=timedelta(minutes=4))
    mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert len(mint.issued) == 2


async def test_concurrent_requests_share_one_mint(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    mock_github.get(REPO_URL).respond(json=REPO)

    await asyncio.gather(*(gateway.get_repository(INSTALLATION_ID, "octo", "hello") for _ in range(5)))

    assert len(mint.issued) == 1


async def test_tokens_are_cached_per_installation(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    first = mount_mint(mock_github, clock, installation_id=1, prefix="ghs_one")
    second = mount_mint(mock_github, clock, installation_id=2, prefix="ghs_two")
    repo = mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(1, "octo", "hello")
    await gateway.get_repository(2, "octo", "hello")
    await gateway.get_repository(1, "octo", "hello")

    assert [credential(c.request) for c in repo.calls] == [first.issued[0], second.issued[0], first.issued[0]]


async def test_nothing_is_assumed_about_a_tokens_shape(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    odd = "v2." + "a-B_c~9/" * 60  # long, no ghs_ prefix, punctuation
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    mock_github.post(f"{BASE_URL}/app/installations/{INSTALLATION_ID}/access_tokens").respond(
        201, json={"token": odd, "expires_at": expires}
    )
    repo = mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert repo.calls.last.request.headers["authorization"] == f"token {odd}"


async def test_401_mints_a_fresh_token_and_retries_once(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL)
    repo.side_effect = [httpx.Response(401, json={"message": "Bad credentials"}), httpx.Response(200, json=REPO)]

    found = await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert found.full_name == "octo/hello"
    assert len(mint.issued) == 2
    assert [credential(c.request) for c in repo.calls] == mint.issued
    assert clock.sleeps == []


async def test_401_twice_is_unauthorized(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL).respond(401, json={"message": "Bad credentials"})

    with pytest.raises(Unauthorized) as caught:
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert caught.value.status == 401
    assert caught.value.message == "Bad credentials"
    assert len(mint.issued) == 2
    assert repo.call_count == 2
    # The rejected token is not handed out again.
    repo.respond(json=REPO)
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    assert len(mint.issued) == 3


async def test_a_refused_mint_is_unauthorized(gateway: GitHubGateway, mock_github: respx.MockRouter) -> None:
    mock_github.post(f"{BASE_URL}/app/installations/{INSTALLATION_ID}/access_tokens").respond(
        401, json={"message": "A JSON web token could not be decoded"}
    )

    with pytest.raises(Unauthorized, match="JSON web token"):
        await gateway.get_repository(INSTALLATION_ID, "octo", "hello")


async def test_app_jwt_is_rs256_signed_with_the_app_id_as_issuer(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime, app_key: AppKey
) -> None:
    mint = mount_mint(mock_github, clock)
    mock_github.get(REPO_URL).respond(json=REPO)

    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    scheme, _, token = mint.authorizations[0].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, app_key.public_pem, algorithms=["RS256"], issuer=str(APP_ID), options={"require": ["iat", "exp"]}
    )
    assert claims["iss"] == str(APP_ID)
    assert 0 < claims["exp"] - claims["iat"] <= 600  # GitHub refuses App JWTs that live longer than 10 minutes


async def test_app_level_calls_use_the_jwt_and_mint_nothing(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime, app_key: AppKey
) -> None:
    mint = mount_mint(mock_github, clock)
    route = mock_github.get(f"{REPO_URL}/installation").respond(json={"id": 99, "app_id": APP_ID})

    assert await gateway.get_installation_for_repo("octo", "hello") == 99

    assert mint.issued == []
    request = route.calls.last.request
    assert request.headers["authorization"].startswith("Bearer ")
    jwt.decode(credential(request), app_key.public_pem, algorithms=["RS256"], issuer=str(APP_ID))


async def test_run_token_request_has_exactly_the_repository_and_permissions(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock, prefix="ghs_run")

    token = await gateway.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})

    assert mint.bodies == [{"repositories": ["hello"], "permissions": {"contents": "write"}}]
    assert token.token == mint.issued[0]
    assert token.expires_at == clock.now() + timedelta(hours=1)
    assert mint.authorizations[0].startswith("Bearer ")


async def test_run_tokens_are_never_cached_or_reused(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL).respond(json=REPO)

    first = await gateway.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})
    second = await gateway.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert first.token != second.token
    assert len(mint.issued) == 3
    assert credential(repo.calls.last.request) not in (first.token, second.token)
    assert mint.bodies[2] is None


@pytest.mark.parametrize(
    ("repo", "permissions"), [("octo/hello", {"contents": "write"}), ("", {"contents": "write"}), ("hello", {})]
)
async def test_run_token_arguments_are_checked(gateway: GitHubGateway, repo: str, permissions: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"repository|permissions"):
        await gateway.mint_run_token(INSTALLATION_ID, repo, permissions)


async def test_revoke_token_deletes_with_that_token(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    token = await gateway.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})
    route = mock_github.delete(f"{BASE_URL}/installation/token")
    route.side_effect = [
        httpx.Response(204),
        httpx.Response(401, json={"message": "Bad credentials"}),
        httpx.Response(404, json={"message": "Not Found"}),
    ]

    await gateway.revoke_token(token)
    await gateway.revoke_token(token)  # already revoked: fine
    await gateway.revoke_token(token)  # a server without the endpoint: fine, the token expires anyway

    assert [c.request.headers["authorization"] for c in route.calls] == [f"token {mint.issued[0]}"] * 3


def test_token_scope_body_and_normalisation() -> None:
    scope = TokenScope.of(["b", "a", "a"], {"pull_requests": "write", "contents": "read"})
    assert scope == TokenScope.of(["a", "b"], {"contents": "read", "pull_requests": "write"})
    assert scope.request_body() == {
        "repositories": ["a", "b"],
        "permissions": {"contents": "read", "pull_requests": "write"},
    }
    assert TokenScope().request_body() is None


def test_token_response_errors_do_not_quote_the_token() -> None:
    with pytest.raises(ValueError, match="expires_at") as caught:
        parse_token_response({"token": "ghs_secretvalue123", "expires_at": "not a date"})
    assert "ghs_secretvalue123" not in str(caught.value)
    assert "ghs_secretvalue123" not in repr(
        parse_token_response(json.loads('{"token": "ghs_secretvalue123", "expires_at": "2026-01-01T00:00:00Z"}'))
    )


async def test_forget_installation_drops_its_tokens(
    gateway: GitHubGateway, mock_github: respx.MockRouter, clock: FakeTime
) -> None:
    mint = mount_mint(mock_github, clock)
    mock_github.get(REPO_URL).respond(json=REPO, headers={"x-ratelimit-remaining": "10"})
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    gateway.forget_installation(INSTALLATION_ID)
    assert gateway.rate_limit_remaining == {}
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")

    assert len(mint.issued) == 2


async def test_from_settings(app_key: AppKey, mock_github: respx.MockRouter) -> None:
    settings = load_settings(
        APP_ID=str(APP_ID), PRIVATE_KEY=app_key.private_pem, GITHUB_API_URL="https://ghe.example.com/api/v3/"
    )
    route = mock_github.get("https://ghe.example.com/api/v3/repos/octo/hello/installation").respond(json={"id": 3})

    async with GitHubGateway.from_settings(settings) as gw:
        assert await gw.get_installation_for_repo("octo", "hello") == 3

    assert gw.app_id == APP_ID
    claims = jwt.decode(credential(route.calls.last.request), app_key.public_pem, algorithms=["RS256"])
    assert claims["iss"] == str(APP_ID)
