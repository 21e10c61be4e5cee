"""What is wrong with a config file, said so a user can act on it, and what of it may be shown for another repository.

A problem names its file, key path and (when known) line and column. Files of other repositories are told by where
and in general terms only (`public`), since their contents may be private to that repository.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from bot import messages
from bot.config.model import RepoConfig

BUILT_IN_DEFAULTS: Final = "(built-in defaults)"
_PLAIN_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


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

    def reply(self) -> str:
        """What Kickoff answers on the issue: that it started nothing, then each problem (as `messages()` may)."""
        lines = [messages.CONFIG_BROKEN, ""]
        for problem in self.problems:
            where = problem.file or ".github/kickoff.yml"
            if problem.line is not None:
                where += f":{problem.line}"
                if problem.column is not None:
                    where += f":{problem.column}"
            template = messages.CONFIG_PROBLEM if problem.path else messages.CONFIG_PROBLEM_NO_KEY
            lines.append(template.format(where=where, key=problem.path, message=problem.message))
        return "\n".join(lines)



def format_path(loc: Sequence[object]) -> str:
    """`limits.max_open_prs`, `tasks.fix.agents[1]`, `agents["my agent"]`."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{short(part)}"]' if isinstance(part, str) else f"[{short(repr(part))}]"
    return text



def item_type(annotation: Any) -> Any:
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
            item = item_type(current)
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


def public(problem: ConfigProblem, owner: str, repo: str) -> ConfigProblem:
    """The problem as it may be posted for `owner/repo`: a file of another repository is told by file, line, key
    and what is wrong in general terms, never by what it says."""
    if problem.detail or problem.file == BUILT_IN_DEFAULTS or _in_repository(problem.file, owner, repo):
        return problem
    return ConfigProblem(
        problem.file, general_path(problem.loc), problem.general or messages.CONFIG_GENERAL_INVALID,
        problem.line, problem.column, general=problem.general, loc=problem.loc, detail=str(problem),
    )




def kind(value: object) -> str:
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


def describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{short(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return short(repr(value))
    return kind(value)


def short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

