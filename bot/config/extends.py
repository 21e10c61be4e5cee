"""Where a repository's config comes from: its file, the files it names in Probot-style `_extends`, merged in order.

Fetching is the caller's (`Fetch`); this module walks a chain of `_extends`, refusing cycles, chains that are too
deep, targets that are malformed and repositories the operator's policy does not let a config read.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot import messages
from bot.config.parsing import Layer, Parsed, problem_at
from bot.config.policy import OperatorPolicy
from bot.config.problems import ConfigError, ConfigProblem, kind

CONFIG_PATH: Final = ".github/kickoff.yml"
MAX_EXTENDS_DEPTH: Final = 5

Fetch = Callable[[str, str, str], Awaitable[tuple[str, str] | None]]
"""`fetch(owner, repo, path)`: the file's text and blob sha on the default branch, or None if there is none."""

Parse = Callable[[str, str, str], Parsed]
"""`parse(text, blob_sha, file_name)`: the parsed file, or a `ConfigError` naming `file_name`."""

# Probot's `_extends` syntax: `repo`, `owner/repo`, `repo:path` or `owner/repo:path`.
_EXTENDS: Final = re.compile(
    r"^(?:(?P<owner>[a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38})/)?(?P<repo>[-.\w]{1,100})(?::(?P<path>.+))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class FileRef:
    owner: str
    repo: str
    path: str = CONFIG_PATH

    @property
    def key(self) -> tuple[str, str, str]:
        return self.owner.lower(), self.repo.lower(), self.path

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}:{self.path}"


def deep_merge(base: Mapping[Hashable, Any], override: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
    """Mappings merge key by key (the override wins); any other value, lists included, replaces the base's."""
    merged: dict[Hashable, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_extends(value: object, owner: str) -> FileRef:
    """Resolve an `_extends` value relative to `owner` (raising ValueError with the reason)."""
    if not isinstance(value, str):
        raise ValueError(f"must be text like `repo`, `owner/repo` or `owner/repo:path`, not {kind(value)}")
    match = _EXTENDS.match(value.strip())
    if match is None:
        raise ValueError(f"`{value}` is not `repo`, `owner/repo` or `owner/repo:path`")
    path = (match.group("path") or CONFIG_PATH).strip()
    segments = path.split("/")
    if path.startswith("/") or any(segment in {"", ".", ".."} for segment in segments):
        raise ValueError(f"`{path}` is not a plain path inside the repository")
    return FileRef(match.group("owner") or owner, match.group("repo"), path)


async def load_chain(
    start: FileRef, fetch: Fetch, parse: Parse, home: tuple[str, str], policy: OperatorPolicy
) -> list[Layer]:
    """The file at `start` and the files it `_extends`, base first; empty when `start` does not exist."""
    layers: list[Layer] = []
    chain: list[FileRef] = []
    ref: FileRef | None = start
    extended_from: tuple[Layer, str] | None = None
    while ref is not None:
        if any(seen.key == ref.key for seen in chain):
            names = " → ".join(str(seen) for seen in [*chain, ref])
            raise _extends_problem(
                extended_from, f"`_extends` makes a cycle: {names}", messages.CONFIG_GENERAL_EXTENDS_CYCLE
            )
        if len(chain) > MAX_EXTENDS_DEPTH:
            names = " → ".join(str(seen) for seen in [*chain, ref])
            raise _extends_problem(
                extended_from, f"`_extends` goes more than {MAX_EXTENDS_DEPTH} files deep: {names}",
                messages.CONFIG_GENERAL_EXTENDS_DEPTH,
            )
        fetched = await fetch(ref.owner, ref.repo, ref.path)
        if fetched is None:
            if extended_from is None:
                return []
            raise _extends_problem(
                extended_from,
                f"`_extends` points to {ref}, which does not exist or which Kickoff cannot read "
                "(is the App installed on that repository?)",
                messages.CONFIG_GENERAL_EXTENDS_MISSING,
            )
        text, sha = fetched
        parsed = parse(text, sha, str(ref))
        data = dict(parsed.data)
        layer = Layer(str(ref), sha, data, parsed.node)
        layers.insert(0, layer)
        chain.append(ref)
        if "_extends" not in data:
            break
        raw = data.pop("_extends")
        try:
            ref = parse_extends(raw, ref.owner)
        except ValueError as exc:
            general = messages.CONFIG_GENERAL_EXTENDS.format(reason=messages.CONFIG_GENERAL_EXTENDS_MALFORMED)
            raise ConfigError([problem_at(layer, ("_extends",), str(exc), general)]) from None
        if not policy.may_extend(ref.owner, ref.repo, home_owner=home[0], home_repo=home[1]):
            # Refused before it is fetched: Kickoff reads nothing from a repository the operator did not list.
            message = messages.CONFIG_EXTENDS_NOT_ALLOWED.format(owner=home[0], target=f"{ref.owner}/{ref.repo}")
            general = messages.CONFIG_EXTENDS_NOT_ALLOWED_GENERAL
            raise ConfigError([problem_at(layer, ("_extends",), message, general)])
        extended_from = (layer, "_extends")
    return layers


def _extends_problem(origin: tuple[Layer, str] | None, message: str, reason: str) -> ConfigError:
    # Only reached after the first file, so `origin` (the file whose `_extends` led here) is always known.
    general = messages.CONFIG_GENERAL_EXTENDS.format(reason=reason)
    if origin is None:
        return ConfigError([ConfigProblem("", "_extends", message, general=general, loc=("_extends",))])
    layer, key = origin
    return ConfigError([problem_at(layer, (key,), message, general)])
