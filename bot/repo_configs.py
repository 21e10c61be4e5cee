"""The repo-config service: every reader of `.github/kickoff.yml` goes through one loader, one cache and one policy.

A broken file raises `ConfigError` from `load`, for those who answer a person (the triggers report it on the issue,
the scheduler fails the runs it holds with the problems). Those who answer nobody (the queue, pull-request
bookkeeping) use `load_or_defaults`: the defaults and one log line, since the file is reported where it is used.

What it costs GitHub: the repository's own file is read at every load, but conditionally (the gateway's ETag store:
an unchanged file is a `304 Not Modified`, which GitHub does not count) and parsed once per blob sha (the loader's
cache). A file of another repository that is not there — the org's `.github` defaults most often, whose 404 carries
no ETag — is remembered as missing for `MISSING_FOR` seconds instead of asked again at every event. A `push` to a
repository's default branch that touches a config file forgets both what is remembered of it and the gateway's
stored copy (`invalidate`), so a new or changed file counts at the next load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from bot.config.loader import CONFIG_PATH, ConfigError, ConfigLoader, load_repo_config
from bot.config.model import RepoConfig
from bot.config.policy import OperatorPolicy
from bot.github import GitHubAPI, NotFound, PermissionDenied

log = logging.getLogger(__name__)

MISSING_FOR: Final = 600.0
"""Seconds a config file of another repository (the org's `.github`, an `_extends` target) found missing is taken as
missing without asking GitHub again; a push touching it ends this at once."""
MISSING_ENTRIES: Final = 4096

FileKey = tuple[int, str, str, str]
"""(installation, owner, repository, path), names lower-cased."""

ConfigLookup = Callable[[int, str], Awaitable[RepoConfig]]
"""`lookup(installation_id, "owner/name")`: a repository's config (what the scheduler and PR opening take)."""


class RepoConfigs:
    """Reads repo configs for one process; `github` is asked at each load, so a swapped gateway is used at once."""

    def __init__(
        self,
        github: Callable[[], GitHubAPI],
        policy: OperatorPolicy,
        *,
        loader: ConfigLoader | None = None,
        missing_for: float = MISSING_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._github = github
        self.policy = policy
        self.loader = loader or ConfigLoader()
        self.missing_for = missing_for
        self._clock = clock
        self._recent: dict[str, tuple[float, RepoConfig]] = {}
        self._missing: dict[FileKey, float] = {}  # until when (clock) a file is taken as missing

    @staticmethod
    def _key(installation_id: int, owner: str, repo: str, path: str) -> FileKey:
        return installation_id, owner.lower(), repo.lower(), path.strip("/")

    def _known_missing(self, key: FileKey) -> bool:
        until = self._missing.get(key)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._missing[key]
        return False

    def _remember_missing(self, key: FileKey) -> None:
        if self.missing_for <= 0:
            return
        self._missing.pop(key, None)
        self._missing[key] = self._clock() + self.missing_for
        while len(self._missing) > MISSING_ENTRIES:
            del self._missing[next(iter(self._missing))]  # the oldest remembered

    def invalidate(self, installation_id: int, repository: str, paths: Collection[str] | None = None) -> int:
        """A push to `repository`'s default branch touched `paths` (None: it cannot be told which, so all): forget
        what is remembered of the config files among them — misses, and the gateway's stored copy, so the next read
        is a plain GET. Returns how many remembered misses were forgotten."""
        owner, _, name = repository.partition("/")
        owner, name = owner.lower(), name.lower()
        wanted = None if paths is None else {p.strip("/") for p in paths}
        dropped = 0
        for key in list(self._missing):
            if key[0] == installation_id and key[1:3] == (owner, name) and (wanted is None or key[3] in wanted):
                del self._missing[key]
                dropped += 1
        self._recent.pop(repository, None)
        forget = getattr(self._github(), "forget_response", None)
        if callable(forget):
            for path in sorted(wanted) if wanted is not None else (CONFIG_PATH,):
                forget(installation_id, f"/repos/{owner}/{name}/contents/{path}")
        return dropped

    async def load(self, installation_id: int, repository: str, *, ref: str | None = None) -> RepoConfig:
        """The config of `owner/name` from `ref` (its default branch when None, never a pull request's head),
        merged over the org's, within the operator's policy. Raises `ConfigError`, and GitHub's refusal to read
        the repository itself."""
        github = self._github()
        owner, _, name = repository.partition("/")

        async def fetch(file_owner: str, file_repo: str, path: str) -> tuple[str, str] | None:
            home = file_owner.lower() == owner.lower() and file_repo.lower() == name.lower()
            key = self._key(installation_id, file_owner, file_repo, path)
            if not home and self._known_missing(key):
                return None
            try:
                found = await github.get_file(installation_id, file_owner, file_repo, path, ref=ref if home else None)
            except (NotFound, PermissionDenied):
                if home:
                    raise
                found = None  # another repository the installation cannot read: as if it had no file
            if found is None:
                if not home:
                    self._remember_missing(key)
                return None
            return found.text, found.sha

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
