"""Tokens, the App JWT and the private key never reach a log line, an exception message or a repr."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from bot.github import GitHubError, GitHubGateway
from tests.github.harness import BASE_URL, INSTALLATION_ID, AppKey, FakeTime, credential, mount_mint

REPO_URL = f"{BASE_URL}/repos/octo/hello"
REPO = {"id": 1, "name": "hello", "full_name": "octo/hello", "owner": {"login": "octo"}}


def secret_fragments(app_key: AppKey, *values: str) -> list[str]:
    key_lines = [line for line in app_key.private_pem.splitlines() if line and not line.startswith("-----")]
    return [*values, *key_lines]


def error_texts(error: BaseException) -> list[str]:
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


async def test_secrets_are_absent_from_logs_and_errors(
    gateway: GitHubGateway,
    mock_github: respx.MockRouter,
    clock: FakeTime,
    app_key: AppKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mint = mount_mint(mock_github, clock)
    repo = mock_github.get(REPO_URL)
    repo.side_effect = [
        httpx.Response(502),
        httpx.Response(401, json={"message": "Bad credentials"}),
        httpx.Response(200, json=REPO),
        httpx.ConnectError("connection reset"),
        httpx.Response(200, json=REPO),
        httpx.Response(401, json={"message": "Bad credentials"}),
        httpx.Response(401, json={"message": "Bad credentials"}),
    ]
    mock_github.post(f"{REPO_URL}/labels").respond(
        422, json={"message": "Validation Failed", "errors": [{"resource": "Label", "code": "invalid"}]}
    )
    mock_github.get(f"{REPO_URL}/installation").respond(404, json={"message": "Not Found"})

    errors: list[GitHubError] = []
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    await gateway.get_repository(INSTALLATION_ID, "octo", "hello")
    for call in (
        gateway.get_repository(INSTALLATION_ID, "octo", "hello"),
        gateway.request(INSTALLATION_ID, "POST", "/repos/octo/hello/labels", json={"name": "x"}),
        gateway.get_installation_for_repo("octo", "hello"),
    ):
        with pytest.raises(GitHubError) as caught:
            await call
        errors.append(caught.value)
    run_token = await gateway.mint_run_token(INSTALLATION_ID, "hello", {"contents": "write"})

    jwts = [a.partition(" ")[2] for a in mint.authorizations]
    jwts += [
        credential(c.request) for c in mock_github.calls if c.request.headers["authorization"].startswith("Bearer")
    ]
    secrets = secret_fragments(app_key, *mint.issued, *jwts, run_token.token)
    assert len(mint.issued) == 5
    assert "retrying" in caplog.text
    assert "minting a new one" in caplog.text

    surfaces = [caplog.text, repr(gateway), repr(run_token), str(run_token)]
    for error in errors:
        surfaces += error_texts(error)
    for surface in surfaces:
        for secret in secrets:
            assert secret not in surface
