"""Which backends a server offers, and the start-up check of the default runner's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runners.fly import FlyRunner
from bot.runners.github_actions import GitHubActionsRunner
from bot.runners.kubernetes import KubernetesRunner
from bot.runners.local import LocalRunner, secret_paths
from bot.runners.registry import build_scheduler, check_runner_settings, remote_backends
from bot.settings import SettingsError
from tests.runs.support import World, world

FLY = {"FLY_API_TOKEN": "t", "KICKOFF_FLY_APP": "runners", "KICKOFF_FLY_IMAGE": "registry.fly.io/runners:1"}


@pytest.fixture
async def w(sqlite_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(sqlite_url, tmp_path, PUBLIC_URL="https://kickoff.example.com") as built:
        yield built


async def test_only_the_operators_backends_are_offered(w: World) -> None:
    """Configured is not enabled: github-actions could run here, but the operator listed only the default."""
    assert remote_backends(w.services) == {}


async def test_every_listed_backend_is_built(sqlite_url: str, tmp_path: Path) -> None:
    async with world(sqlite_url, tmp_path, PUBLIC_URL="https://kickoff.example.com",
                     KICKOFF_RUNNERS="local,github-actions,kubernetes,fly", KICKOFF_K8S_IMAGE="runner:1", **FLY) as w:
        offered = remote_backends(w.services)
        assert isinstance(offered["github-actions"], GitHubActionsRunner)
        assert isinstance(offered["kubernetes"], KubernetesRunner)
        assert isinstance(offered["fly"], FlyRunner)
        for backend in offered.values():
            await backend.aclose()


async def test_a_listed_backend_without_its_settings_stops_start_up(sqlite_url: str, tmp_path: Path) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_RUNNERS="local,fly") as w:
        with pytest.raises(SettingsError, match="KICKOFF_RUNNERS lists fly, which needs FLY_API_TOKEN"):
            remote_backends(w.services)


@pytest.mark.parametrize(("runner", "missing"), [
    ("kubernetes", "KICKOFF_K8S_IMAGE"),
    ("fly", "FLY_API_TOKEN, KICKOFF_FLY_APP, KICKOFF_FLY_IMAGE"),
])
async def test_a_default_runner_without_its_settings_stops_start_up(
    sqlite_url: str, tmp_path: Path, runner: str, missing: str
) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_RUNNER=runner) as w:
        with pytest.raises(SettingsError, match=f"KICKOFF_RUNNER={runner} needs {missing}"):
            check_runner_settings(w.services)
        with pytest.raises(SettingsError):
            build_scheduler(w.services)


async def test_github_actions_needs_a_reachable_public_url(sqlite_url: str, tmp_path: Path) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_RUNNER="github-actions") as w:
        with pytest.raises(SettingsError, match="PUBLIC_URL"):
            check_runner_settings(w.services)
        w.services.github = None
        with pytest.raises(SettingsError, match="APP_ID"):
            check_runner_settings(w.services)


async def test_the_scheduler_offers_exactly_the_enabled_backends(sqlite_url: str, tmp_path: Path) -> None:
    async with world(sqlite_url, tmp_path, PUBLIC_URL="https://kickoff.example.com") as w:
        scheduler = build_scheduler(w.services)
        assert set(scheduler.backends) == {"local"}
        local = scheduler.backends["local"]
        assert isinstance(local, LocalRunner)
        assert local.sandbox == "required"
        await scheduler.aclose()
    async with world(sqlite_url, tmp_path, PUBLIC_URL="https://kickoff.example.com",
                     KICKOFF_RUNNER="github-actions", KICKOFF_BWRAP=str(tmp_path / "no-bwrap")) as w:
        scheduler = build_scheduler(w.services)
        assert set(scheduler.backends) == {"github-actions"}  # and the absent sandbox does not matter
        await scheduler.aclose()


async def test_the_local_backend_refuses_to_start_without_its_sandbox(sqlite_url: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-bwrap")
    async with world(sqlite_url, tmp_path, KICKOFF_BWRAP=missing) as w:
        with pytest.raises(SettingsError,
                           match=r"the local runner needs its agent sandbox.*bubblewrap is not installed"):
            build_scheduler(w.services)
    # A bwrap that cannot build the sandbox (here: one that always fails) is refused the same way.
    broken = tmp_path / "broken-bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    broken.chmod(0o755)
    async with world(sqlite_url, tmp_path, KICKOFF_BWRAP=str(broken)) as w:
        with pytest.raises(SettingsError, match="No permissions to creating new namespace"):
            build_scheduler(w.services)


async def test_the_unsafe_opt_out_runs_local_agents_unsandboxed_and_says_so(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(sqlite_url, tmp_path, KICKOFF_BWRAP=str(tmp_path / "no-bwrap"),
                     KICKOFF_UNSAFE_NO_SANDBOX="1") as w:
        scheduler = build_scheduler(w.services)
        local = scheduler.backends["local"]
        assert isinstance(local, LocalRunner)
        assert local.sandbox == "off"
        assert "KICKOFF_UNSAFE_NO_SANDBOX is set" in caplog.text
        await scheduler.aclose()


def test_kickoffs_own_files_are_hidden_from_local_agents(tmp_path: Path) -> None:
    hidden = secret_paths(database_url="sqlite:///./data/kickoff.db", private_key_path=Path("keys/app.pem"),
                          cwd=tmp_path)
    base = tmp_path.resolve()
    assert hidden == (str(base / ".env"), str(base / "data/kickoff.db"), str(base / "data/kickoff.db-wal"),
                      str(base / "data/kickoff.db-shm"), str(base / "data/kickoff.db-journal"),
                      str(base / "keys/app.pem"))
    assert secret_paths(database_url="postgresql://kickoff@db/kickoff", private_key_path=None, cwd=tmp_path) == (
        str(base / ".env"),)
