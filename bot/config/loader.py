"""Read `.github/kickoff.yml`: safe YAML, org defaults, Probot-style `_extends`, problems a user can act on.

No I/O here: callers pass an async `fetch(owner, repo, path) -> (text, blob_sha) | None` that reads a file from a
repository's default branch (None when the file does not exist or cannot be read). Exceptions raised by `fetch`
propagate unchanged; every problem with the configuration itself is a `ConfigError`.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import types
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot import messages
from bot.config.model import AgentSpec, CrossCheckError, RepoConfig
from bot.config.policy import ORG_CONFIG_REPO, OperatorPolicy

CONFIG_PATH: Final = ".github/kickoff.yml"
MAX_CONFIG_BYTES: Final = 64 * 1024
MAX_EXTENDS_DEPTH: Final = 5
MAX_ALIASES: Final = 100
MAX_EXPANDED_NODES: Final = 100_000
MAX_NESTING: Final = 64
MAX_PROBLEMS: Final = 50
CACHE_SIZE: Final = 256

Fetch = Callable[[str, str, str], Awaitable[tuple[str, str] | None]]
"""`fetch(owner, repo, path)`: the file's text and blob sha on the default branch, or None if there is none."""

# Probot's `_extends` syntax: `repo`, `owner/repo`, `repo:path` or `owner/repo:path`.
_EXTENDS: Final = re.compile(
    r"^(?:(?P<owner>[a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38})/)?(?P<repo>[-.\w]{1,100})(?::(?P<path>.+))?$",
    re.IGNORECASE,
)
_PLAIN_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


# ---- Problems ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file: where (file, key path, line and column when known) and what.

    `general` says what is wrong without quoting the file; `ConfigLoader.load` puts it (and a key path stripped of
    names the file chose) in place of `message` and `path` for files of other repositories, keeping the full text
    in `detail` for the log only.
    """

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None
    general: str = ""
    loc: tuple[str | int, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason found, each naming its file and key."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(self.messages()))

    def messages(self) -> list[str]:
        """The problems as they may be shown on GitHub (no values from other repositories' files)."""
        return [str(problem) for problem in self.problems]

    def details(self) -> list[str]:
        """The problems in full, values included: for the operator's log only."""
        return [problem.detail or str(problem) for problem in self.problems]


# ---- Files and refs ------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A parsed file, independent of where it came from (so it can be cached by blob sha)."""

    data: dict[Hashable, Any]
    node: Node | None


@dataclass(frozen=True, slots=True)
class _Layer:
    name: str
    sha: str
    data: dict[Hashable, Any]
    node: Node | None


@dataclass(frozen=True, slots=True)
class _ParseFailure:
    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    general: str = messages.CONFIG_GENERAL_YAML

    def problem(self, file: str) -> ConfigProblem:
        return ConfigProblem(file, self.path, self.message, self.line, self.column, general=self.general)


class _ParseError(Exception):
    def __init__(self, failure: _ParseFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> object | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
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
        self.hits = self.misses = 0


# ---- Safe YAML -------------------------------------------------------------------------------------------------------


class _SafeBoundedLoader(_BaseLoader):
    """A safe loader (libyaml's when available) that refuses duplicate keys; `_check_expansion` bounds aliases."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _value in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key `{key_node.value}`", key_node.start_mark
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep)


def _check_expansion(root: Node) -> None:
    """Bound the size and depth of the document once aliases are expanded, and refuse recursive aliases."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) → (expanded nodes, height)
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    references = 0
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            references += len(children)
            # Every reference beyond one per distinct node is an alias (`*name`).
            if references - len(sizes) > MAX_ALIASES:
                raise _ParseError(_ParseFailure(f"more than {MAX_ALIASES} aliases (*name); write the values out"))
            active.discard(key)
            total, height = 1, 1
            for child in children:
                child_total, child_height = sizes[id(child)]
                total += child_total
                height = max(height, child_height + 1)
            if total > MAX_EXPANDED_NODES:
                raise _ParseError(
                    _ParseFailure(f"the document expands to more than {MAX_EXPANDED_NODES} values (alias bomb?)")
                )
            if height > MAX_NESTING:
                raise _ParseError(_ParseFailure(f"values are nested more than {MAX_NESTING} levels deep"))
            sizes[key] = (total, height)
            continue
        if key in sizes:
            continue
        if key in active:
            raise _ParseError(_ParseFailure("an alias refers to a value that contains it (recursive alias)"))
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str) -> _Parsed:
    """Parse one config file's text into a mapping (raising `_ParseError` with line and column when it is not)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise _ParseError(
            _ParseFailure(f"the file is {size:,} bytes; Kickoff reads config files of at most {MAX_CONFIG_BYTES:,}",
                          general=messages.CONFIG_GENERAL_TOO_LARGE)
        )
    loader: _SafeBoundedLoader | None = None
    try:
        loader = _SafeBoundedLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
    except _ParseError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise _ParseError(_ParseFailure(f"invalid YAML: {problem}", line=line, column=column)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char[0]) if char else 0
        failure = _ParseFailure(
            f"invalid YAML: the control character U+{code:04X} is not allowed", line=line, column=column
        )
        raise _ParseError(failure) from None
    except yaml.YAMLError as exc:
        raise _ParseError(_ParseFailure(f"invalid YAML: {exc}")) from None
    except RecursionError:
        raise _ParseError(_ParseFailure("values are nested too deeply")) from None
    except Exception as exc:
        # PyYAML's constructors raise plain ValueError and friends on values like `2001-13-45`; untrusted text must
        # not turn into anything but a problem report.
        raise _ParseError(_ParseFailure(f"invalid YAML value: {exc}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return _Parsed({}, node)
    if not isinstance(data, dict):
        message = f"the top level must be a mapping of keys such as `agents:` or `limits:`, not {_kind(data)}"
        raise _ParseError(_ParseFailure(message, line=1, column=1, general=message))
    return _Parsed(data, node)


# ---- Merging and extends -------------------------------------------------------------------------------------------


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
        raise ValueError(f"must be text like `repo`, `owner/repo` or `owner/repo:path`, not {_kind(value)}")
    match = _EXTENDS.match(value.strip())
    if match is None:
        raise ValueError(f"`{value}` is not `repo`, `owner/repo` or `owner/repo:path`")
    path = (match.group("path") or CONFIG_PATH).strip()
    segments = path.split("/")
    if path.startswith("/") or any(segment in {"", ".", ".."} for segment in segments):
        raise ValueError(f"`{path}` is not a plain path inside the repository")
    return FileRef(match.group("owner") or owner, match.group("repo"), path)


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
            raise ConfigError([_public(problem, owner, repo) for problem in exc.problems]) from None

    async def _load(self, owner: str, repo: str, fetch: Fetch, policy: OperatorPolicy) -> RepoConfig:
        home = (owner, repo)
        chains: list[Awaitable[list[_Layer]]] = []
        if repo.lower() != ORG_CONFIG_REPO:
            chains.append(self._load_chain(FileRef(owner, ORG_CONFIG_REPO), fetch, home, policy))
        chains.append(self._load_chain(FileRef(owner, repo), fetch, home, policy))
        results = await asyncio.gather(*chains, return_exceptions=True)
        layers: list[_Layer] = []
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
                return _within_policy(cached, layers, policy)
            if isinstance(cached, ConfigError):
                raise ConfigError(cached.problems)
        try:
            config = _validate(layers)
        except ConfigError as exc:
            if cacheable:
                self.results.put(cache_key, exc)
            raise
        if cacheable:
            self.results.put(cache_key, config)
        return _within_policy(config, layers, policy)

    async def _load_chain(
        self, start: FileRef, fetch: Fetch, home: tuple[str, str], policy: OperatorPolicy
    ) -> list[_Layer]:
        """The file at `start` and the files it `_extends`, base first; empty when `start` does not exist."""
        layers: list[_Layer] = []
        chain: list[FileRef] = []
        ref: FileRef | None = start
        extended_from: tuple[_Layer, str] | None = None
        while ref is not None:
            if any(seen.key == ref.key for seen in chain):
                names = " → ".join(str(seen) for seen in [*chain, ref])
                raise self._extends_problem(extended_from, f"`_extends` makes a cycle: {names}",
                                            messages.CONFIG_GENERAL_EXTENDS_CYCLE)
            if len(chain) > MAX_EXTENDS_DEPTH:
                names = " → ".join(str(seen) for seen in [*chain, ref])
                raise self._extends_problem(
                    extended_from, f"`_extends` goes more than {MAX_EXTENDS_DEPTH} files deep: {names}",
                    messages.CONFIG_GENERAL_EXTENDS_DEPTH,
                )
            fetched = await fetch(ref.owner, ref.repo, ref.path)
            if fetched is None:
                if extended_from is None:
                    return []
                raise self._extends_problem(
                    extended_from,
                    f"`_extends` points to {ref}, which does not exist or which Kickoff cannot read "
                    "(is the App installed on that repository?)",
                    messages.CONFIG_GENERAL_EXTENDS_MISSING,
                )
            text, sha = fetched
            parsed = self._parse(text, sha, str(ref))
            data = dict(parsed.data)
            layer = _Layer(str(ref), sha, data, parsed.node)
            layers.insert(0, layer)
            chain.append(ref)
            if "_extends" not in data:
                break
            raw = data.pop("_extends")
            try:
                ref = parse_extends(raw, ref.owner)
            except ValueError as exc:
                general = messages.CONFIG_GENERAL_EXTENDS.format(reason=messages.CONFIG_GENERAL_EXTENDS_MALFORMED)
                raise ConfigError([_problem_at(layer, ("_extends",), str(exc), general)]) from None
            if not policy.may_extend(ref.owner, ref.repo, home_owner=home[0], home_repo=home[1]):
                # Refused before it is fetched: Kickoff reads nothing from a repository the operator did not list.
                message = messages.CONFIG_EXTENDS_NOT_ALLOWED.format(owner=home[0], target=f"{ref.owner}/{ref.repo}")
                general = messages.CONFIG_EXTENDS_NOT_ALLOWED_GENERAL
                raise ConfigError([_problem_at(layer, ("_extends",), message, general)])
            extended_from = (layer, "_extends")
        return layers

    @staticmethod
    def _extends_problem(origin: tuple[_Layer, str] | None, message: str, reason: str) -> ConfigError:
        # Only reached after the first file, so `origin` (the file whose `_extends` led here) is always known.
        general = messages.CONFIG_GENERAL_EXTENDS.format(reason=reason)
        if origin is None:
            return ConfigError([ConfigProblem("", "_extends", message, general=general, loc=("_extends",))])
        layer, key = origin
        return ConfigError([_problem_at(layer, (key,), message, general)])

    def _parse(self, text: str, sha: str, name: str) -> _Parsed:
        cached = self.files.get(sha) if sha else None
        if isinstance(cached, _Parsed):
            return cached
        if isinstance(cached, _ParseFailure):
            raise ConfigError([cached.problem(name)])
        try:
            parsed = parse_yaml(text)
        except _ParseError as exc:
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
    except _ParseError as exc:
        raise ConfigError([exc.failure.problem(filename)]) from None
    data = dict(parsed.data)
    layer = _Layer(filename, "", data, parsed.node)
    unresolved: str | None = None
    if "_extends" in data:
        raw = data.pop("_extends")
        try:
            target = parse_extends(raw, "OWNER")
        except ValueError as exc:
            raise ConfigError([_problem_at(layer, ("_extends",), str(exc))]) from None
        unresolved = f"`_extends: {raw}` ({target}) is not followed offline, so keys it would supply are not checked"
    try:
        config = _validate([layer])
    except ConfigError as exc:
        problems = list(exc.problems)
        if unresolved:
            problems.append(_problem_at(layer, ("_extends",), unresolved))
        raise ConfigError(problems) from None
    return config, [f"{filename}: note: {unresolved}"] if unresolved else []


def validate_text(text: str, filename: str = CONFIG_PATH) -> RepoConfig:
    """Validate one config file's text offline (no `_extends` resolution, no org defaults)."""
    return check_text(text, filename)[0]


# ---- Validation and problem messages ---------------------------------------------------------------------------------


def _validate(layers: Sequence[_Layer]) -> RepoConfig:
    merged: dict[Hashable, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    try:
        return RepoConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_problems_from_validation(exc, layers)) from None


def _problems_from_validation(exc: ValidationError, layers: Sequence[_Layer]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(error["loc"])
        context = error.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, CrossCheckError):
            for path, message in cause.problems:
                problems.append(_problem_at_layers(layers, path, message, messages.CONFIG_GENERAL_UNDEFINED_AGENT))
            continue
        on_key = bool(loc) and loc[-1] == "[key]"
        if on_key:
            loc = loc[:-1]
        general = messages.CONFIG_GENERAL.get(error["type"], messages.CONFIG_GENERAL_INVALID)
        if on_key:
            general = messages.CONFIG_GENERAL["string_pattern_mismatch"]
        problems.append(_problem_at_layers(layers, loc, _message(error, loc, on_key), general))
    if len(problems) > MAX_PROBLEMS:
        extra = len(problems) - MAX_PROBLEMS
        more = f"… and {extra} more problems"
        problems = [*problems[:MAX_PROBLEMS], ConfigProblem(problems[0].file, "", more, general=more)]
    return problems


def _message(error: Any, loc: tuple[str | int, ...], on_key: bool) -> str:
    kind: str = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key `{name}`"
        close = difflib.get_close_matches(name, allowed, n=1)
        if close:
            message += f"; did you mean `{close[0]}`?"
        if allowed:
            message += f" (allowed here: {', '.join(allowed)})"
        return message
    if on_key:
        if kind == "string_pattern_mismatch":
            return (
                f"`{value}` is not a valid name: use lowercase letters, digits, `-` and `_`, "
                "start with a letter, at most 44 characters"
            )
        return f"the name `{_short(value)}` is not valid: " + _plain(error["msg"])
    message = _plain(error["msg"])
    if kind in {"value_error", "assertion_error"}:
        return message
    message = f"{message} (got {_describe(value)})"
    if isinstance(value, bool) and kind in {"literal_error", "string_type"}:
        message += "; YAML reads yes/no/on/off as true/false, so put the value in quotes"
    return message


_PYDANTIC_WORDS: Final = (
    (re.compile(r"^(Value error|Assertion failed), "), ""),
    (re.compile(r"^Input should be "), "must be "),
    (re.compile(r"a valid dictionary( or instance of \w+)?"), "a mapping"),
    (re.compile(r"a valid tuple"), "a list"),
    (re.compile(r"^Tuple should"), "The list should"),
)


def _plain(message: str) -> str:
    """Pydantic's wording, in the words of a YAML file."""
    for pattern, replacement in _PYDANTIC_WORDS:
        message = pattern.sub(replacement, message)
    return message


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys a mapping at `loc` may have, found by walking RepoConfig's fields."""
    current: Any = RepoConfig
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        else:
            current = _item_type(current)
            if current is None:
                return []
    while not (isinstance(current, type) and issubclass(current, BaseModel)):
        current = _item_type(current)
        if current is None:
            return []
    return list(current.model_fields)


def _item_type(annotation: Any) -> Any:
    """The value type of a dict or tuple annotation (unwrapping Optional), or None."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is tuple and args:
        return args[0]
    if origin in {typing.Union, types.UnionType} and len(args) == 1:
        return args[0]
    return None


def _problem_at_layers(
    layers: Sequence[_Layer], loc: Sequence[str | int], message: str, general: str = ""
) -> ConfigProblem:
    """Attribute a problem to the file that supplied the value at `loc` (the most specific file that has it)."""
    best: tuple[int, _Layer | None] = (-1, None)
    for layer in reversed(layers):
        depth = _depth_in_node(layer.node, loc)[0]
        if depth > best[0]:
            best = (depth, layer)
    chosen = best[1]
    if chosen is None:
        return ConfigProblem("(built-in defaults)", format_path(loc), message, general=general, loc=tuple(loc))
    return _problem_at(chosen, loc, message, general)


def _problem_at(layer: _Layer, loc: Sequence[str | int], message: str, general: str = "") -> ConfigProblem:
    node = _depth_in_node(layer.node, loc)[1]
    line = column = None
    if node is not None and node.start_mark is not None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
    return ConfigProblem(layer.name, format_path(loc), message, line, column, general=general, loc=tuple(loc))


# ---- The operator's policy -------------------------------------------------------------------------------------------


def _within_policy(config: RepoConfig, layers: Sequence[_Layer], policy: OperatorPolicy) -> RepoConfig:
    """`config` if it asks only for what the operator allows (built-in agents' default env narrowed to the allowed
    names); otherwise a `ConfigError` naming each request the operator did not allow."""
    problems: list[ConfigProblem] = []
    if config.runner is not None and config.runner not in policy.runners:
        allowed = messages.code_list(policy.runners)
        problems.append(_problem_at_layers(
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
        problems.append(_problem_at_layers(
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


# ---- What may be shown of another repository's file ------------------------------------------------------------------


def _schema_keys() -> frozenset[str]:
    names: set[str] = {"_extends"}
    pending: list[Any] = [RepoConfig]
    while pending:
        current = pending.pop()
        if isinstance(current, type) and issubclass(current, BaseModel):
            for name, info in current.model_fields.items():
                if name not in names:
                    names.add(name)
                    pending.append(info.annotation)
        else:
            item = _item_type(current)
            if item is not None:
                pending.append(item)
    return frozenset(names)


_SCHEMA_KEYS: Final = _schema_keys()


def general_path(loc: Sequence[str | int]) -> str:
    """The key path with every name the file chose (an agent's, a task's, an unknown key) as `*`."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            name = part if isinstance(part, str) and part in _SCHEMA_KEYS else "*"
            text += f".{name}" if text else name
    return text


def _in_repository(file: str, owner: str, repo: str) -> bool:
    return file.lower().startswith(f"{owner}/{repo}:".lower())


def _public(problem: ConfigProblem, owner: str, repo: str) -> ConfigProblem:
    """The problem as it may be posted for `owner/repo`: a file of another repository is told by file, line, key
    and what is wrong in general terms, never by what it says."""
    if problem.detail or problem.file == "(built-in defaults)" or _in_repository(problem.file, owner, repo):
        return problem
    return ConfigProblem(
        problem.file, general_path(problem.loc), problem.general or messages.CONFIG_GENERAL_INVALID,
        problem.line, problem.column, general=problem.general, loc=problem.loc, detail=str(problem),
    )


def _depth_in_node(node: Node | None, loc: Sequence[str | int]) -> tuple[int, Node | None]:
    """How many parts of `loc` exist in the YAML tree, and the node of the deepest one (its key, for mappings)."""
    depth = 0
    found: Node | None = None
    for part in loc:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                    depth, found, node = depth + 1, key_node, value_node
                    break
            else:
                return depth, found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            depth, found = depth + 1, node
        else:
            return depth, found
    return depth, found


def format_path(loc: Sequence[object]) -> str:
    """`limits.max_open_prs`, `tasks.fix.agents[1]`, `agents["my agent"]`."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{_short(part)}"]' if isinstance(part, str) else f"[{_short(repr(part))}]"
    return text


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{_short(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return _short(repr(value))
    return _kind(value)


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "CONFIG_PATH",
    "MAX_CONFIG_BYTES",
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
