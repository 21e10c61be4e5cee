"""Validate merged layers against `RepoConfig`, and turn pydantic's errors into problems in a YAML file's words.

Each problem is attributed to the file (layer) that supplied the value, with the line of its key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Sequence
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from bot import messages
from bot.config.extends import deep_merge
from bot.config.model import CrossCheckError, RepoConfig
from bot.config.parsing import Layer, problem_at_layers
from bot.config.problems import ConfigError, ConfigProblem, describe, item_type, short

MAX_PROBLEMS: Final = 50


def validate(layers: Sequence[Layer]) -> RepoConfig:
    """The layers merged in order (base first) and validated; a `ConfigError` names each problem's file and line."""
    merged: dict[Hashable, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    try:
        return RepoConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_problems_from_validation(exc, layers)) from None


def _problems_from_validation(exc: ValidationError, layers: Sequence[Layer]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(error["loc"])
        context = error.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, CrossCheckError):
            for path, message in cause.problems:
                problems.append(problem_at_layers(layers, path, message, messages.CONFIG_GENERAL_UNDEFINED_AGENT))
            continue
        on_key = bool(loc) and loc[-1] == "[key]"
        if on_key:
            loc = loc[:-1]
        general = messages.CONFIG_GENERAL.get(error["type"], messages.CONFIG_GENERAL_INVALID)
        if on_key:
            general = messages.CONFIG_GENERAL["string_pattern_mismatch"]
        problems.append(problem_at_layers(layers, loc, _message(error, loc, on_key), general))
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
        return f"the name `{short(value)}` is not valid: " + _plain(error["msg"])
    message = _plain(error["msg"])
    if kind in {"value_error", "assertion_error"}:
        return message
    message = f"{message} (got {describe(value)})"
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
            current = item_type(current)
            if current is None:
                return []
    while not (isinstance(current, type) and issubclass(current, BaseModel)):
        current = item_type(current)
        if current is None:
            return []
    return list(current.model_fields)
