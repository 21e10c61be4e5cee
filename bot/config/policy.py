"""What the operator decides and a repository's config cannot change: backends, agent env names, `_extends` reach.

A repository's `.github/kickoff.yml` is written by whoever can push to its default branch; the server's settings are
written by its operator. So the config may only choose within the operator's lists (`KICKOFF_RUNNERS`,
`KICKOFF_AGENT_ENV`, `KICKOFF_CONFIG_EXTENDS`): asking for anything else is a config problem, never a quiet upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config.model import DEFAULT_AGENT_ENV, is_kickoff_env

if TYPE_CHECKING:
    from bot.settings import Settings

ORG_CONFIG_REPO = ".github"


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """The operator's lists. The defaults are the safe ones: the local backend only, the built-in agents' keys, and
    `_extends` to the owner's `.github` repository only."""

    runners: tuple[str, ...] = ("local",)
    agent_env: frozenset[str] = DEFAULT_AGENT_ENV
    extends: frozenset[str] = field(default_factory=frozenset)  # lowercase `owner/name`

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorPolicy:
        return cls(
            runners=settings.enabled_runners,
            agent_env=settings.agent_env_names,
            extends=frozenset(settings.config_extends or ()),
        )

    def allows_env(self, name: str) -> bool:
        """Kickoff's own names are refused whatever the list says."""
        return name in self.agent_env and not is_kickoff_env(name)

    def refused_env(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if not self.allows_env(name)]

    def may_extend(self, owner: str, repo: str, *, home_owner: str, home_repo: str) -> bool:
        """Whether a config of `home_owner/home_repo` may read `owner/repo` through `_extends`."""
        target = f"{owner}/{repo}".lower()
        if target == f"{home_owner}/{home_repo}".lower():
            return True  # another file of the same repository reaches nothing new
        if target == f"{home_owner}/{ORG_CONFIG_REPO}".lower():
            return True
        return target in self.extends
