"""Property-based checks: whatever a repository holds, the loader answers with a config or a ConfigError."""

from __future__ import annotations

import asyncio
import hashlib
import string
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, RepoConfig, validate_text
from bot.config.loader import ConfigLoader

KEYS = st.sampled_from(
    [
        "agents",
        "tasks",
        "runner",
        "limits",
        "protected_paths",
        "verify",
        "permissions",
        "pull_requests",
        "queue",
        "_extends",
        "claude",
        "fix",
        "research",
        "house",
        "adapter",
        "command",
        "env",
        "model",
        "attempts",
        "output",
        "max_open_prs",
        "min_permission",
        "title",
        "labels",
        "merge",
        "review_window",
        "cancel",
        "Bad Name",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["claude", "command", "report", "pr", "auto", "{prompt_file}", "{task}", "shared", "x/y:z"]),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4), st.integers(0, 3)), children, max_size=4),
    ),
    max_leaves=12,
)
DOCUMENTS = st.one_of(st.dictionaries(KEYS, STRUCTURES, max_size=4), STRUCTURES)
# Smaller mappings for the two-file merge test: generating structures is what takes the time.
SMALL_MAPPINGS = st.dictionaries(
    KEYS,
    st.recursive(
        SCALARS, lambda c: st.one_of(st.lists(c, max_size=2), st.dictionaries(KEYS, c, max_size=3)), max_leaves=5
    ),
    max_size=3,
)
YAMLISH = st.lists(
    st.one_of(
        st.sampled_from(
            ["\n", "  ", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!", "'", '"', "#", "|"]
        ),
        KEYS,
        st.text(alphabet=string.printable, max_size=6),
    ),
    max_size=30,
).map("".join)
TEXTS = st.one_of(st.text(max_size=300), YAMLISH)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check(text: str) -> None:
    try:
        result: RepoConfig | ConfigError = validate_text(text, "kickoff.yml")
    except ConfigError as exc:
        result = exc
    if isinstance(result, ConfigError):
        assert result.problems
        assert all(problem.file == "kickoff.yml" and problem.message for problem in result.problems)


def load(org: str | None, repo: str | None, extra: str | None = None) -> None:
    files = {".github": org, "app": repo, "shared": extra}

    async def fetch(owner: str, name: str, path: str) -> tuple[str, str] | None:
        text = files.get(name)
        return None if text is None else (text, sha(text))

    try:
        result: RepoConfig | ConfigError = asyncio.run(ConfigLoader().load("acme", "app", fetch))
    except ConfigError as exc:
        result = exc
    if isinstance(result, ConfigError):
        assert result.problems


@settings(max_examples=1000, deadline=None)
@given(TEXTS)
def test_validate_text_raises_only_config_errors_on_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=1000, deadline=None)
@given(DOCUMENTS)
def test_validate_text_raises_only_config_errors_on_arbitrary_structures(document: Any) -> None:
    check(dump(document))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.none(), TEXTS), st.one_of(st.none(), TEXTS, DOCUMENTS.map(dump)), st.one_of(st.none(), TEXTS))
def test_load_repo_config_raises_only_config_errors(org: str | None, repo: str | None, extra: str | None) -> None:
    load(org, repo, extra)


@settings(max_examples=1000, deadline=None)
@given(SMALL_MAPPINGS, SMALL_MAPPINGS, SMALL_MAPPINGS)
def test_load_repo_config_merges_arbitrary_structures_safely(
    org: dict[Any, Any], repo: dict[Any, Any], shared: dict[Any, Any]
) -> None:
    load(dump(org), dump({**repo, "_extends": "shared"}), dump(shared))
