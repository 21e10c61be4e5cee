"""What every agent adapter provides: the argv and fixed environment to start the agent, and a parser for its output.

An adapter never sees a Kickoff credential: the runner builds the agent's environment from an allow-list
(`agent_environment`) and hands the adapter only paths and the agent's settings from the spec.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bot.config.model import FORBIDDEN_ENV, FORBIDDEN_ENV_PREFIXES
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, AgentCommand, Usage

SUMMARY_LIMIT: Final = 8_000
"""Bound on the summary an agent reports; it ends up in a check run (at most 65,535 characters)."""

BASE_ENV: Final = ("PATH", "LANG", "TERM")
"""Copied from the runner's environment into every agent's; HOME and TMPDIR point into the workspace."""

NEVER_PASSED: Final = frozenset(
    {
        ENV_GIT_TOKEN,
        ENV_RUN_SECRET,
        "PRIVATE_KEY",
        "WEBHOOK_SECRET",
        "DATABASE_URL",
        "GITHUB_TOKEN",
        *FORBIDDEN_ENV,
    }
)
"""Names never copied into an agent's environment, even when a repo's config lists them."""


def is_forbidden(name: str) -> bool:
    """True for Kickoff's own secrets and tokens (and every KICKOFF_* name)."""
    upper = name.upper()
    return upper in NEVER_PASSED or upper.startswith(FORBIDDEN_ENV_PREFIXES)


SCRATCH_PATTERNS: Final = (".aider*", ".claude/settings.local.json")
"""Agent CLIs' own state files in a checkout (aider's chat history and tags cache, Claude Code's local settings):
the runner never takes an untracked file matching these into a commit, whichever adapter ran (a tracked one is
still taken when changed). Adapters also point what they can into the agent's HOME."""


@dataclass(frozen=True)
class AgentContext:
    """Where the agent works: the checkout, the prompt file (outside the checkout) and its throw-away HOME.

    `env` is the environment the agent will get before the adapter's own additions: only the allow-list, never a
    Kickoff credential, so an adapter may derive its settings from it (a key under the CLI's own name, a config
    file naming the endpoint). `sandboxed` says whether the runner's own sandbox (bubblewrap: only the workspace
    writable, no host processes, no further namespaces) holds the agent: then a CLI's shell tool may run without
    the CLI's own sandbox, which cannot nest inside it.
    """

    agent: AgentCommand
    workdir: Path
    prompt_file: Path
    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    sandboxed: bool = False
    max_cost_usd: float | None = None
    """`limits.max_cost_usd`: an adapter whose agent can bound its own spending passes it on (Claude Code)."""


@dataclass(frozen=True)
class Invocation:
    """How to start the agent: argv (never a shell string), what to feed on stdin, fixed environment additions."""

    argv: tuple[str, ...]
    stdin: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    """Files the runner writes (mode 0600) before the agent starts, by path relative to the agent's HOME: the
    CLI's own settings, kept out of the checkout."""


@dataclass(frozen=True)
class AgentOutput:
    """What the agent printed (bounded tails) and how it ended."""

    exit_code: int | None
    stdout: str
    transcript: str


@dataclass(frozen=True)
class AgentReport:
    """What an adapter read from the agent's output."""

    summary: str = ""
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # the agent said it failed, even if it exited 0
    budget_reached: bool = False  # the agent stopped itself at its cost bound (not a failure: its work is partial)


@dataclass(frozen=True)
class Adapter:
    name: str
    invocation: Callable[[AgentContext], Invocation]
    parse: Callable[[AgentOutput], AgentReport]
    running_cost: Callable[[str], float | None] | None = None
    """The agent's cost so far, from the latest output it printed (a chunk of its transcript), for agents that
    print it as they go: the runner stops one whose cost passes `limits.max_cost_usd`. None: it does not."""


def agent_environment(
    source: Mapping[str, str],
    names: Iterable[str],
    *,
    home: Path,
    tmpdir: Path,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The agent's whole environment: the base allow-list, the adapter's fixed settings, then the listed names.

    Forbidden names are dropped even when listed; nothing else from `source` is copied.
    """
    env: dict[str, str] = {"LANG": "C.UTF-8", "TERM": "dumb"}
    for name in BASE_ENV:
        if name in source:
            env[name] = source[name]
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(fixed or {})
    for name in names:
        if not is_forbidden(name) and name in source:
            env[name] = source[name]
    env["HOME"] = str(home)
    env["TMPDIR"] = str(tmpdir)
    return env


def model_args(flag: str, agent: AgentCommand) -> tuple[str, ...]:
    return (flag, agent.model) if agent.model else ()


_OBJECT_START: Final = re.compile(r"(?m)^([ \t]*)\{")
_MAX_ATTEMPTS: Final = 200


def trailing_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object that `text` ends with (one line or pretty-printed), or None.

    Objects that start a line are tried from the last one back, unindented ones first, so a final report after
    other output (or JSON lines before it) is found without parsing the whole text.
    """
    stripped = text.rstrip()
    if not stripped.endswith("}"):
        return None
    decoder = json.JSONDecoder()
    starts = list(_OBJECT_START.finditer(stripped))
    ordered = [m for m in reversed(starts) if not m.group(1)] + [m for m in reversed(starts) if m.group(1)]
    for match in ordered[:_MAX_ATTEMPTS]:
        try:
            value, end = decoder.raw_decode(stripped, match.end() - 1)
        except ValueError:
            continue
        if end == len(stripped) and isinstance(value, dict):
            return value
    return None


def json_lines(text: str) -> Iterable[dict[str, Any]]:
    """Every line of `text` that is a JSON object (JSON Lines output); other lines are skipped."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


def as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


def add(*values: int | None) -> int | None:
    """The sum of the values that are known; None when none is."""
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def usage_from_mapping(data: Mapping[str, Any]) -> Usage:
    """A Usage from a loosely typed mapping (a program's own report); wrong types are ignored, not fatal."""
    model = data.get("model")
    return Usage(
        input_tokens=as_int(data.get("input_tokens")),
        output_tokens=as_int(data.get("output_tokens")),
        cost_usd=as_float(data.get("cost_usd")),
        turns=as_int(data.get("turns")),
        model=model if isinstance(model, str) and model else None,
    )


def streamed_cost(text: str) -> float | None:
    """The last `usage.cost_usd` on a JSON line of `text` (`{"usage": {"cost_usd": 0.12}}`), or None."""
    if "cost_usd" not in text:
        return None
    found = None
    for line in json_lines(text):
        usage = line.get("usage")
        if isinstance(usage, dict) and (cost := as_float(usage.get("cost_usd"))) is not None:
            found = cost
    return found


def bounded_summary(text: object) -> str:
    if not isinstance(text, str):
        return ""
    text = text.strip()
    if len(text) <= SUMMARY_LIMIT:
        return text
    return text[: SUMMARY_LIMIT - 1].rstrip() + "…"
