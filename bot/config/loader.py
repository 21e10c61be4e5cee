"""Read `.github/kickoff.yml`: safe YAML, org defaults, Probot-style `_extends`, problems a user can act on.

No I/O here: callers pass an async `fetch(owner, repo, path) -> (text, blob_sha) | None` that reads a file from a
repository's default branch (None when the file does not exist or cannot be read). Exceptions raised by `fetch`
propagate unchanged; every problem with the configuration itself is a `ConfigError`.

The steps live beside this module: `parsing` (YAML with line numbers), `extends` (the `_extends` chain),
`validation` (the model and its problems), `policy` (what the operator allows) and `problems` (how they are told).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Hashable
from typing import Final

from bot.config.extends import CONFIG_PATH, MAX_EXTENDS_DEPTH, Fetch, FileRef, deep_merge, load_chain, parse_extends
from bot.config.model import RepoConfig
from bot.config.parsing import MAX_CONFIG_BYTES, Layer, Parsed, ParseError, ParseFailure, parse_yaml, problem_at
from bot.config.policy import ORG_CONFIG_REPO, OperatorPolicy, within_policy
from bot.config.problems import ConfigError, ConfigProblem, format_path, general_path, public
from bot.config.validation import validate

CACHE_SIZE: Final = 256


class _LRU:
    """A small LRU; `hits` counts what it saved (the cache tests read it)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self.hits = 0

    def get(self, key: Hashable) -> object | None:
        value = self._items.get(key)
        if value is None:
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: object) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
        self.hits = 0


class ConfigLoader:
    """Loads repo configs; parsed files and finished configs are cached by blob sha in small LRUs."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.files = _LRU(cache_size)
        self.results = _LRU(cache_size)

    def clear(self) -> None:
        self.files.clear()
        self.results.clear()

    async def load(self, owner: str, repo: str, fetch: Fetch, policy: OperatorPolicy | None = None) -> RepoConfig:
        """The config of `owner/repo`: its `.github/kickoff.yml` merged over the org's (`{owner}/.github`), within
        the operator's `policy` (the safe defaults when None)."""
        try:
            return await self._load(owner, repo, fetch, policy or OperatorPolicy())
        except ConfigError as exc:
            raise ConfigError([public(problem, owner, repo) for problem in exc.problems]) from None

    async def _load(self, owner: str, repo: str, fetch: Fetch, policy: OperatorPolicy) -> RepoConfig:
        home = (owner, repo)
        chains: list[Awaitable[list[Layer]]] = []
        if repo.lower() != ORG_CONFIG_REPO:
            chains.append(load_chain(FileRef(owner, ORG_CONFIG_REPO), fetch, self._parse, home, policy))
        chains.append(load_chain(FileRef(owner, repo), fetch, self._parse, home, policy))
        results = await asyncio.gather(*chains, return_exceptions=True)
        layers: list[Layer] = []
        problems: list[ConfigProblem] = []
        for result in results:
            if isinstance(result, ConfigError):
                problems.extend(result.problems)
            elif isinstance(result, BaseException):
                raise result
            else:
                layers.extend(result)
        if problems:
            raise ConfigError(problems)

        cache_key = tuple((layer.name, layer.sha) for layer in layers)
        cacheable = all(layer.sha for layer in layers)
        if cacheable:
            cached = self.results.get(cache_key)
            if isinstance(cached, RepoConfig):
                return within_policy(cached, layers, policy)
            if isinstance(cached, ConfigError):
                raise ConfigError(cached.problems)
        try:
            config = validate(layers)
        except ConfigError as exc:
            if cacheable:
                self.results.put(cache_key, exc)
            raise
        if cacheable:
            self.results.put(cache_key, config)
        return within_policy(config, layers, policy)

    def _parse(self, text: str, sha: str, name: str) -> Parsed:
        cached = self.files.get(sha) if sha else None
        if isinstance(cached, Parsed):
            return cached
        if isinstance(cached, ParseFailure):
            raise ConfigError([cached.problem(name)])
        try:
            parsed = parse_yaml(text)
        except ParseError as exc:
            if sha:
                self.files.put(sha, exc.failure)
            raise ConfigError([exc.failure.problem(name)]) from None
        if sha:
            self.files.put(sha, parsed)
        return parsed


_default_loader = ConfigLoader()


async def load_repo_config(
    owner: str, repo: str, fetch: Fetch, *, loader: ConfigLoader | None = None, policy: OperatorPolicy | None = None
) -> RepoConfig:
    """The validated config of `owner/repo` from its default branch, merged over the org's defaults, within the
    operator's `policy` (the safe defaults when None)."""
    return await (loader or _default_loader).load(owner, repo, fetch, policy)


def clear_cache() -> None:
    _default_loader.clear()


def check_text(text: str, filename: str = CONFIG_PATH) -> tuple[RepoConfig, list[str]]:
    """Validate one file offline; `_extends` is not followed, and the notes say so."""
    try:
        parsed = parse_yaml(text)
    except ParseError as exc:
        raise ConfigError([exc.failure.problem(filename)]) from None
    data = dict(parsed.data)
    layer = Layer(filename, "", data, parsed.node)
    unresolved: str | None = None
    if "_extends" in data:
        raw = data.pop("_extends")
        try:
            target = parse_extends(raw, "OWNER")
        except ValueError as exc:
            raise ConfigError([problem_at(layer, ("_extends",), str(exc))]) from None
        unresolved = f"`_extends: {raw}` ({target}) is not followed offline, so keys it would supply are not checked"
    try:
        config = validate([layer])
    except ConfigError as exc:
        problems = list(exc.problems)
        if unresolved:
            problems.append(problem_at(layer, ("_extends",), unresolved))
        raise ConfigError(problems) from None
    return config, [f"{filename}: note: {unresolved}"] if unresolved else []


def validate_text(text: str, filename: str = CONFIG_PATH) -> RepoConfig:
    """Validate one config file's text offline (no `_extends` resolution, no org defaults)."""
    return check_text(text, filename)[0]


__all__ = [
    "CONFIG_PATH",
    "MAX_CONFIG_BYTES",
    "MAX_EXTENDS_DEPTH",
    "ConfigError",
    "ConfigLoader",
    "ConfigProblem",
    "Fetch",
    "FileRef",
    "check_text",
    "clear_cache",
    "deep_merge",
    "format_path",
    "general_path",
    "load_repo_config",
    "parse_extends",
    "parse_yaml",
    "validate_text",
]
