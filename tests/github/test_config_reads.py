"""What reading repo configs costs GitHub, at the HTTP seam (the real gateway over respx): the repository's file
revalidated with If-None-Match, the org's missing `.github` remembered, and both forgotten by a push touching them."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bot.features import Features
from bot.github import GitHubGateway
from bot.handlers import configs as config_handlers
from bot.repo_configs import MISSING_FOR, RepoConfigs
from bot.root import compose
from bot.routing import Event
from bot.store.db import Store
from tests.deliveries import load
from tests.github.harness import APP_ID, BASE_URL, INSTALLATION_ID, AppKey, FakeTime, mount_mint
from tests.support import make_settings

OWNER, REPO = "octo", "hello"
CONFIG = ".github/kickoff.yml"
HOME_URL = f"{BASE_URL}/repos/{OWNER}/{REPO}/contents/{CONFIG}"
ORG_URL = f"{BASE_URL}/repos/{OWNER}/.github/contents/{CONFIG}"
ETAG = 'W/"config-1"'


class ConfigFile:
    """The repository's `.github/kickoff.yml` as GitHub serves it: an ETag, and 304 when it matches."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.etag = ETAG

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == self.etag:
            return httpx.Response(304, headers={"etag": self.etag})
        body = {"type": "file", "encoding": "base64", "sha": "blob-" + self.etag[3:-1], "path": CONFIG,
                "name": "kickoff.yml", "content": base64.b64encode(self.text.encode()).decode()}
        return httpx.Response(200, json=body, headers={"etag": self.etag})


@pytest.fixture
async def services(tmp_path: Path, app_key: AppKey, clock: FakeTime) -> AsyncIterator[Features]:
    store = Store(f"sqlite:///{tmp_path}/kickoff.db")
    await store.migrate()
    gateway = GitHubGateway(APP_ID, app_key.private_pem, base_url=BASE_URL, sleep=clock.sleep, now=clock.now,
                            monotonic=clock.monotonic)
    try:
        features = compose(make_settings(f"sqlite:///{tmp_path}/kickoff.db", APP_ID=APP_ID), store, github=gateway)
        features.configs = RepoConfigs(features.require_github, features.configs.policy, clock=clock.monotonic)
        yield features
    finally:
        await gateway.aclose()
        await store.close()


@pytest.fixture
def github(mock_github: respx.MockRouter, clock: FakeTime) -> tuple[respx.Route, respx.Route, ConfigFile]:
    mount_mint(mock_github, clock)
    home = ConfigFile("tasks:\n  fix:\n    agents: [claude]\n")
    home_route = mock_github.get(HOME_URL).mock(side_effect=home)
    org_route = mock_github.get(ORG_URL).respond(404, json={"message": "Not Found"})
    return home_route, org_route, home


def push(repo: str, paths: list[str], *, ref: str = "refs/heads/main") -> Event:
    payload: dict[str, Any] = copy.deepcopy(load("push.none.1.json"))
    payload.update(ref=ref, created=False, forced=False, installation={"id": INSTALLATION_ID})
    payload["repository"].update(name=repo, full_name=f"{OWNER}/{repo}", default_branch="main")
    payload["repository"]["owner"]["login"] = OWNER
    payload["commits"] = [{**payload["head_commit"], "added": [], "removed": [], "modified": paths}]
    return Event("d-1", "push", None, payload, installation_id=INSTALLATION_ID, repository=f"{OWNER}/{repo}")


async def load_config(services: Features) -> list[str]:
    config = await services.configs.load(INSTALLATION_ID, f"{OWNER}/{REPO}")
    return list(config.tasks["fix"].agents)


def conditions(route: respx.Route) -> list[str | None]:
    return [call.request.headers.get("if-none-match") for call in route.calls]


async def test_the_repository_config_is_revalidated_with_if_none_match(
    services: Features, github: tuple[respx.Route, respx.Route, ConfigFile]
) -> None:
    home, _, _ = github
    assert await load_config(services) == ["claude"]
    assert await load_config(services) == ["claude"]
    assert await load_config(services) == ["claude"]

    assert conditions(home) == [None, ETAG, ETAG]
    assert [call.response.status_code for call in home.calls] == [200, 304, 304]


async def test_the_orgs_missing_github_repository_is_remembered_for_a_while(
    services: Features, github: tuple[respx.Route, respx.Route, ConfigFile], clock: FakeTime
) -> None:
    _, org, _ = github
    for _ in range(3):
        await load_config(services)
    assert org.call_count == 1

    clock.advance(MISSING_FOR + 1)
    await load_config(services)
    assert org.call_count == 2


async def test_a_push_touching_the_config_forgets_it_and_one_that_does_not_leaves_it(
    services: Features, github: tuple[respx.Route, respx.Route, ConfigFile]
) -> None:
    home, org, file = github
    await load_config(services)

    await config_handlers.router.dispatch(push(REPO, ["README.md"]), services)
    await config_handlers.router.dispatch(push(".github", ["README.md"]), services)
    await load_config(services)
    assert conditions(home)[-1] == ETAG  # still revalidated against what was kept
    assert org.call_count == 1  # still remembered missing

    file.text, file.etag = "tasks:\n  fix:\n    agents: [codex]\n", 'W/"config-2"'
    await config_handlers.router.dispatch(push(REPO, [CONFIG]), services)
    await config_handlers.router.dispatch(push(".github", [CONFIG]), services)
    assert await load_config(services) == ["codex"]
    assert conditions(home)[-1] is None  # forgotten: a plain GET
    assert org.call_count == 2  # asked again: the org may have just created its defaults


async def test_a_push_to_another_branch_forgets_nothing(
    services: Features, github: tuple[respx.Route, respx.Route, ConfigFile]
) -> None:
    home, org, _ = github
    await load_config(services)

    await config_handlers.router.dispatch(push(REPO, [CONFIG], ref="refs/heads/feature"), services)
    await config_handlers.router.dispatch(push(".github", [CONFIG], ref="refs/heads/feature"), services)
    await load_config(services)

    assert conditions(home) == [None, ETAG]
    assert org.call_count == 1
