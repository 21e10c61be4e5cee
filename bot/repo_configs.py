"""The repo-config service: every reader of `.github/kickoff.yml` goes through one loader, one cache and one policy.

A broken file raises `ConfigError` from `load`, for those who answer a person (the triggers report it on the issue,
the scheduler fails the runs it holds with the problems). Those who answer nobody (the queue, pull-request
bookkeeping) use `load_or_defaults`: the defaults and one log line, since the file is reported where it is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from bot.config.loader import ConfigError, ConfigLoader, load_repo_config
from bot.config.model import RepoConfig
from bot.config.policy import OperatorPolicy
from bot.github import GitHubAPI, NotFound, PermissionDenied

log = logging.getLogger(__name__)

ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
"""`lookup(installation_id, "owner/name")`: a repository's config (what the scheduler and PR opening take)."""


class RepoConfigs:
    """Reads repo configs for one process; `github` is asked at each load, so a swapped gateway is used at once."""

    def __init__(
        self, github: Callable[[], GitHubAPI], policy: OperatorPolicy, *, loader: ConfigLoader | None = None
    ) -> None:
        self._github = github
        self.policy = policy
        self.loader = loader or ConfigLoader()
        self._recent: dict[str, tuple[float, RepoConfig]] = {}

    async def load(self, installation_id: int, repository: str, *, ref: str | None = None) -> RepoConfig:
        """The config of `owner/name` from `ref` (its default branch when None, never a pull request's head),
        merged over the org's, within the operator's policy. Raises `ConfigError`, and GitHub's refusal to read
        the repository itself."""
        github = self._github()
        owner, _, name = repository.partition("/")

        async def fetch(file_owner: str, file_repo: str, path: str) -> tuple[str, str] | None:
            home = file_owner.lower() == owner.lower() and file_repo.lower() == name.lower()
            try:
                found = await github.get_file(installation_id, file_owner, file_repo, path, ref=ref if home else None)
            except (NotFound, PermissionDenied):
                if home:
                    raise
                return None  # another repository the installation cannot read: as if it had no file
            return None if found is None else (found.text, found.sha)

        return await load_repo_config(owner, name, fetch, loader=self.loader, policy=self.policy)

    async def recent(self, installation_id: int, repository: str, *, max_age: float) -> RepoConfig:
        """`load` of the default branch, reusing a config read at most `max_age` seconds ago: for loops that ask
        on every pass (the scheduler's claim policy). A broken file is not remembered: the next call reads again."""
        now = time.monotonic()
        cached = self._recent.get(repository)
        if cached is not None and cached[0] > now:
            return cached[1]
        config = await self.load(installation_id, repository)
        self._recent[repository] = (now + max_age, config)
        return config

    async def load_or_defaults(self, installation_id: int, repository: str) -> RepoConfig:
        """`load`, but the defaults when the file is broken: for work that answers no person."""
        try:
            return await self.load(installation_id, repository)
        except ConfigError as exc:
            log.warning("config of %s is broken, using the defaults: %s", repository, "; ".join(exc.messages()[:3]))
            return RepoConfig()
