"""A trigger end to end over HTTP: the real `GitHubGateway` (githubkit) against a respx-mocked GitHub."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.github import GitHubGateway
from tests.github.harness import FakeTime, TokenMint
from tests.handlers.harness import (
    APP_ID,
    CONFIG,
    INSTALLATION_ID,
    ISSUE,
    OWNER,
    REPO,
    Harness,
    harness,
    issue_comment,
    labeled,
)

BASE_URL = "https://ghe.example.com/api/v3"
REPO_PATH = f"/repos/{OWNER}/{REPO}"
KICKOFF_YML = "tasks:\n  fix: {agents: [claude, codex]}\n"


@pytest.fixture(scope="module")
def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def github() -> Iterator[respx.MockRouter]:
    clock = FakeTime()
    with respx.mock(base_url=BASE_URL, assert_all_mocked=True, assert_all_called=True) as router:
        router.post(f"/app/installations/{INSTALLATION_ID}/access_tokens").mock(side_effect=TokenMint(clock))
        router.get(f"/repos/{OWNER}/.github/contents/{CONFIG}", name="org-config").respond(
            404, json={"message": "Not Found"}
        )
        router.get(f"{REPO_PATH}/contents/{CONFIG}", name="config").respond(json={
            "type": "file", "encoding": "base64", "sha": "5b1d3c0ffee", "path": CONFIG,
            "content": base64.b64encode(KICKOFF_YML.encode()).decode(),
        })
        router.get(f"{REPO_PATH}/collaborators/{OWNER}/permission", name="permission").respond(
            json={"permission": "write", "role_name": "maintain", "user": {"login": OWNER}}
        )
        router.post(f"{REPO_PATH}/issues/{ISSUE}/comments", name="comment").respond(201, json={"id": 9001})
        yield router


@pytest.fixture
async def gateway(private_pem: str, github: respx.MockRouter) -> AsyncIterator[GitHubGateway]:
    clock = FakeTime()
    async with GitHubGateway(
        APP_ID, private_pem, base_url=BASE_URL, sleep=clock.sleep, now=clock.now, monotonic=clock.monotonic
    ) as gw:
        yield gw


@pytest.fixture
async def world(database_url: str, gateway: GitHubGateway) -> AsyncIterator[Harness]:
    async with harness(database_url, github=gateway) as h:
        yield h


def sent(route: respx.Route) -> object:
    return json.loads(route.calls.last.request.content)


async def test_a_label_trigger_over_http(world: Harness, github: respx.MockRouter) -> None:
    labels = github.get(f"{REPO_PATH}/issues/{ISSUE}/labels", name="labels").respond(
        json=[{"name": "agent:fix"}, {"name": "bug"}]
    )
    removal = github.delete(url__regex=rf"{REPO_PATH}/issues/{ISSUE}/labels/agent(%3A|:)fix$", name="unlabel").respond(
        json=[{"name": "bug"}]
    )

    row = await world.deliver("issues", labeled("agent:fix"))

    assert (row.status, row.last_error) == ("done", None)
    (trigger,) = await world.triggers()
    assert trigger.tracking_comment_id == 9001
    assert [r.agent for r in await world.runs()] == ["claude", "codex"]
    # The config came from the default branch through the contents API (no `ref`: GitHub's default branch);
    # the org's `.github` had none.
    assert "ref" not in github["config"].calls.last.request.url.params
    assert github["org-config"].called
    assert labels.called
    assert github["permission"].call_count == 1
    # No 👀 on the issue (every request is mocked, and none for reactions is): the tracking comment acknowledges
    # a label (issue 15: one write fewer).
    assert not [c for c in github.calls if c.request.url.path.endswith("/reactions")]
    body = sent(github["comment"])
    assert isinstance(body, dict)
    assert body["body"].startswith("Starting 2 runs of `fix` for @Codertocat: claude, codex…")
    assert removal.call_count == 1
    # Every call used the installation's token, and writes came after the reads they depend on.
    order = [call.request.method + " " + call.request.url.path for call in github.calls]
    assert order.index(f"POST /api/v3{REPO_PATH}/issues/{ISSUE}/comments") < order.index(
        next(o for o in order if o.startswith("DELETE"))
    )
    assert all(
        call.request.headers["authorization"].startswith("token ")
        for call in github.calls
        if "/access_tokens" not in call.request.url.path
    )


async def test_a_comment_command_over_http(world: Harness, github: respx.MockRouter) -> None:
    comment_id = 492700400
    reaction = github.post(f"{REPO_PATH}/issues/comments/{comment_id}/reactions").mock(
        return_value=httpx.Response(201, json={"id": 2, "content": "eyes"})
    )

    row = await world.deliver("issue_comment", issue_comment("/agent fix --agents codex please", comment_id=comment_id))

    assert row.status == "done"
    (run,) = await world.runs()
    assert run.agent == "codex"
    assert sent(reaction) == {"content": "eyes"}
    assert (await world.triggers())[0].tracking_comment_id == 9001
