"""What the operator decides and a repository's config cannot change: backends, agent env names, `_extends` reach.

A repository's `.github/kickoff.yml` is written by whoever can push to its default branch; the server's settings are
written by its operator. So the config may only choose within the operator's lists (`KICKOFF_RUNNERS`,
`KICKOFF_AGENT_ENV`, `KICKOFF_CONFIG_EXTENDS`): asking for anything else is a config problem, never a quiet upgrade.
`within_policy` checks a validated config against those lists.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot import messages
from bot.config.model import DEFAULT_AGENT_ENV, AgentSpec, RepoConfig, is_kickoff_env
from bot.config.parsing import Layer, problem_at_layers
from bot.config.problems import ConfigError, ConfigProblem


class OperatorSettings(Protocol):
    """The three process settings the policy is made of (`bot.settings.Settings` has them); the config package is
    below the settings, so it names only what it reads."""

    @property
    def enabled_runners(self) -> tuple[str, ...]: ...

    @property
    def agent_env_names(self) -> frozenset[str]: ...

    @property
    def config_extends(self) -> tuple[str, ...] | None: ...

ORG_CONFIG_REPO = ".github"


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """The operator's lists. The defaults are the safe ones: the local backend only, the built-in agents' keys, and
    `_extends` to the owner's `.github` repository only."""

    runners: tuple[str, ...] = ("local",)
    agent_env: frozenset[str] = DEFAULT_AGENT_ENV
    extends: frozenset[str] = field(default_factory=frozenset)  # lowercase `owner/name`

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> OperatorPolicy:
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


def within_policy(config: RepoConfig, layers: Sequence[Layer], policy: OperatorPolicy) -> RepoConfig:
    """`config` if it asks only for what the operator allows (built-in agents' default env narrowed to the allowed
    names); otherwise a `ConfigError` naming each request the operator did not allow."""
    problems: list[ConfigProblem] = []
    if config.runner is not None and config.runner not in policy.runners:
        allowed = messages.code_list(policy.runners)
        problems.append(problem_at_layers(
            layers, ("runner",), messages.CONFIG_RUNNER_NOT_ALLOWED.format(runner=config.runner, allowed=allowed),
            messages.CONFIG_RUNNER_NOT_ALLOWED_GENERAL.format(allowed=allowed),
        ))
    narrowed: dict[str, AgentSpec] = {}
    for name, agent in config.agents.items():
        refused = policy.refused_env(agent.env)
        if not refused:
            continue
        if not any(_has(layer.data, ("agents", name, "env")) for layer in layers):
            # A built-in agent's default: the operator chose not to hand that key out, so the agent goes without.
            narrowed[name] = agent.model_copy(update={"env": tuple(n for n in agent.env if n not in refused)})
            continue
        many = len(refused) > 1
        message = messages.CONFIG_AGENT_ENV_NOT_ALLOWED.format(
            names=messages.code_list(refused), verb="are" if many else "is", them="them" if many else "it"
        )
        problems.append(problem_at_layers(
            layers, ("agents", name, "env"), message, messages.CONFIG_AGENT_ENV_NOT_ALLOWED_GENERAL
        ))
    if problems:
        raise ConfigError(problems)
    if narrowed:
        return config.model_copy(update={"agents": {**config.agents, **narrowed}})
    return config


def _has(data: Mapping[Hashable, Any], loc: Sequence[str]) -> bool:
    current: Any = data
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True
