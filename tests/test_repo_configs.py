"""The one repo-config service: `load` raises on a broken file, `load_or_defaults` does not, `recent` reuses."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, RepoConfig
from bot.config.policy import OperatorPolicy
from bot.repo_configs import RepoConfigs
from tests.fake_github import FakeGitHub
from tests.support import make_settings

GOOD = "tasks:\n  fix:\n    agents: [claude]\n"


def configs(gh: FakeGitHub) -> RepoConfigs:
    return RepoConfigs(lambda: gh, OperatorPolicy.from_settings(make_settings("sqlite:///unused.db")))


def reads(gh: FakeGitHub) -> int:
    return sum(1 for call in gh.calls_to("get_file") if call[1:3] == ("octo", "hello"))


async def test_recent_reuses_a_config_for_its_max_age_only() -> None:
    gh = FakeGitHub()
    gh.set_file("octo", "hello", ".github/kickoff.yml", GOOD)
    service = configs(gh)
    first = await service.recent(1, "octo/hello", max_age=60)
    assert await service.recent(1, "octo/hello", max_age=60) is first
    assert reads(gh) == 1
    gh.set_file("octo", "hello", ".github/kickoff.yml", "tasks:\n  fix:\n    agents: [codex]\n")
    assert await service.recent(1, "octo/hello", max_age=60) is first  # within its age: not read again
    again = RepoConfigs(lambda: gh, service.policy)
    changed = await again.recent(1, "octo/hello", max_age=0)
    assert changed.tasks["fix"].agents != first.tasks["fix"].agents
    await again.recent(1, "octo/hello", max_age=0)
    assert reads(gh) == 3  # max_age 0 reads every time


async def test_a_broken_file_is_never_remembered() -> None:
    gh = FakeGitHub()
    gh.set_file("octo", "hello", ".github/kickoff.yml", "tasks: [not, a, mapping]\n")
    service = configs(gh)
    for _ in range(2):
        with pytest.raises(ConfigError):
            await service.recent(1, "octo/hello", max_age=60)
    assert reads(gh) == 2
    assert await service.load_or_defaults(1, "octo/hello") == RepoConfig()
