"""Repo config: the `RepoConfig` model of `.github/kickoff.yml`, its loader, and the pieces behind `kickoff config`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.slash_commands import NAME_PATTERN, RESERVED_VERBS

if TYPE_CHECKING:
    from bot.config.loader import (
        CONFIG_PATH,
        ConfigError,
        ConfigLoader,
        ConfigProblem,
        Fetch,
        load_repo_config,
        validate_text,
    )
    from bot.config.model import AgentSpec, RepoConfig, TaskSpec
    from bot.config.policy import OperatorPolicy

# The package's names load their module on first use: `bot.config.model` alone (the queue, `kickoff status`) does
# not pay for the loader, its YAML parser and its problem reports.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("CONFIG_PATH", "ConfigError", "ConfigLoader", "ConfigProblem", "Fetch", "load_repo_config",
                     "validate_text"), "bot.config.loader"),
    **dict.fromkeys(("AgentSpec", "RepoConfig", "TaskSpec"), "bot.config.model"),
    "OperatorPolicy": "bot.config.policy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


EXTENDS_SCHEMA: dict[str, Any] = {
    "type": "string",
    "title": "Extends",
    "description": "Inherit another config (Probot-style): `repo`, `owner/repo` or `owner/repo:path`. "
    "This file's keys win; mappings merge, lists replace.",
}


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `.github/kickoff.yml`, for editors and `kickoff config schema`."""
    from bot.config.model import RepoConfig

    schema = RepoConfig.model_json_schema()
    defaults = RepoConfig().model_dump(mode="json")
    properties: dict[str, Any] = schema["properties"]
    for name, value in defaults.items():
        properties[name].setdefault("default", value)
    schema["properties"] = {"_extends": EXTENDS_SCHEMA, **properties}
    # Pydantic describes the name rule with patternProperties only, which lets other names through unchecked.
    properties["agents"]["propertyNames"] = {"pattern": NAME_PATTERN}
    properties["tasks"]["propertyNames"] = {"pattern": NAME_PATTERN, "not": {"enum": sorted(RESERVED_VERBS)}}
    schema["title"] = "Kickoff repository config (.github/kickoff.yml)"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_json() -> str:
    """`config_schema()` as the text committed in docs/kickoff-config.schema.json."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


def validate_file(path: str | Path) -> tuple[bool, list[str]]:
    """Check a config file offline (`kickoff config validate FILE`): whether it is valid, and lines to print."""
    from bot.config.loader import ConfigError, check_text

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False, [f"{path}: not UTF-8 text"]
    except OSError as exc:
        return False, [f"{path}: cannot read: {exc.strerror or exc}"]
    try:
        _config, notes = check_text(text, str(path))
    except ConfigError as exc:
        return False, exc.messages()
    return True, [*notes, f"{path}: valid"]


__all__ = [
    "CONFIG_PATH",
    "AgentSpec",
    "ConfigError",
    "ConfigLoader",
    "ConfigProblem",
    "Fetch",
    "OperatorPolicy",
    "RepoConfig",
    "TaskSpec",
    "config_schema",
    "load_repo_config",
    "schema_json",
    "validate_file",
    "validate_text",
]
