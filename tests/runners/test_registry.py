"""Which backends a server offers, and the start-up check of the default runner's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runners.fly import FlyRunner
from bot.runners.github_actions import GitHubActionsRunner
from bot.runners.kubernetes import KubernetesRunner
from bot.runners.registry import RemoteRunnerSettings, check_runner_settings, remote_backends
from bot.runs.scheduler import SchedulerSettings, build_scheduler
from bot.settings import SettingsError
from tests.runs.support import World, world

FLY = {"FLY_API_TOKEN": "t", "KICKOFF_FLY_APP": "runners", "KICKOFF_FLY_IMAGE": "registry.fly.io/runners:1"}


def settings(**values: str) -> RemoteRunnerSettings:
    return RemoteRunnerSettings.model_validate(values)


@pytest.fixture
async def w(sqlite_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(sqlite_url, tmp_path, PUBLIC_URL="https://kickoff.example.com") as built:
        yield built


async def test_only_configured_backends_are_offered(w: World) -> None:
    offered = remote_backends(w.services, settings())
    assert set(offered) == {"github-actions"}  # the App is configured and reachable
    assert isinstance(offered["github-actions"], GitHubActionsRunner)
    offered = remote_backends(w.services, settings(KICKOFF_K8S_IMAGE="runner:1", **FLY))
    assert isinstance(offered["kubernetes"], KubernetesRunner)
    assert isinstance(offered["fly"], FlyRunner)
    for backend in offered.values():
        await backend.aclose()


@pytest.mark.parametrize(("runner", "missing"), [
    ("kubernetes", "KICKOFF_K8S_IMAGE"),
    ("fly", "FLY_API_TOKEN, KICKOFF_FLY_APP, KICKOFF_FLY_IMAGE"),
])
async def test_a_default_runner_without_its_settings_stops_start_up(
    sqlite_url: str, tmp_path: Path, runner: str, missing: str
) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_RUNNER=runner) as w:
        with pytest.raises(SettingsError, match=f"KICKOFF_RUNNER={runner} needs {missing}"):
            check_runner_settings(w.services, settings())
        with pytest.raises(SettingsError):
            build_scheduler(w.services, SchedulerSettings(_env_file=None))


async def test_github_actions_needs_a_reachable_public_url(sqlite_url: str, tmp_path: Path) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_RUNNER="github-actions") as w:
        with pytest.raises(SettingsError, match="PUBLIC_URL"):
            check_runner_settings(w.services, settings())
        w.services.github = None
        with pytest.raises(SettingsError, match="APP_ID"):
            check_runner_settings(w.services, settings())


async def test_the_scheduler_offers_local_and_the_configured_backends(w: World) -> None:
    scheduler = build_scheduler(w.services, SchedulerSettings(_env_file=None))
    assert set(scheduler.backends) >= {"local", "github-actions"}
    await scheduler.aclose()
