"""`RepoConfig`: the validated shape of `.github/kickoff.yml`. Every key is optional and unknown keys are errors.

Built-in agents (claude, codex, aider, gemini) and tasks (research, fix, implement) always exist; a file that names
one of them changes only the keys it gives. Models are frozen and sequences are tuples, so a cached config can be
shared safely; treat the mappings as read-only too.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from bot.slash_commands import MAX_ATTEMPTS, NAME_PATTERN, RESERVED_VERBS

AdapterName = Literal["claude", "codex", "aider", "gemini", "command"]
RunnerName = Literal["local", "github-actions", "kubernetes", "fly"]
Permission = Literal["none", "read", "triage", "write", "maintain", "admin"]
Output = Literal["pr", "report"]

COMMAND_PLACEHOLDERS: Final = frozenset({"prompt_file", "workdir"})
TITLE_PLACEHOLDERS: Final = frozenset({"task", "issue_title", "issue", "agent"})

BUILTIN_AGENTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "claude": {"adapter": "claude", "env": ["ANTHROPIC_API_KEY"]},
    "codex": {"adapter": "codex", "env": ["OPENAI_API_KEY"]},
    "aider": {"adapter": "aider", "env": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]},
    "gemini": {"adapter": "gemini", "env": ["GEMINI_API_KEY"]},
}
BUILTIN_TASKS: Final[Mapping[str, Mapping[str, Any]]] = {
    "research": {
        "agents": ["claude"],
        "output": "report",
        "description": "Investigate the issue and write a report (no code changes).",
    },
    "fix": {"agents": ["claude"], "output": "pr", "description": "Fix the bug the issue describes."},
    "implement": {"agents": ["claude"], "output": "pr", "description": "Implement what the issue asks for."},
}

# Kickoff's own secrets and GitHub tokens must never be passed into an agent's workspace, whatever a repo asks.
FORBIDDEN_ENV: Final = frozenset(
    {
        "APP_ID",
        "PRIVATE_KEY",
        "PRIVATE_KEY_PATH",
        "WEBHOOK_SECRET",
        "DATABASE_URL",
        "DASHBOARD_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_APP_PRIVATE_KEY",
    }
)
FORBIDDEN_ENV_PREFIXES: Final = ("KICKOFF_",)

DEFAULT_AGENT_ENV: Final = frozenset(name for spec in BUILTIN_AGENTS.values() for name in spec["env"])
"""`KICKOFF_AGENT_ENV`'s default: exactly the names the built-in agents ask for (their model APIs' keys)."""


def is_kickoff_env(name: str) -> bool:
    """Whether `name` is one of Kickoff's own secrets, settings or GitHub tokens (never an agent's)."""
    upper = name.upper()
    return upper in FORBIDDEN_ENV or upper.startswith(FORBIDDEN_ENV_PREFIXES)

_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOGIN: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_BOT_LOGIN: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_PATH_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def _check_task_name(name: str) -> str:
    if name in RESERVED_VERBS:
        raise ValueError(f"`{name}` is a command (`/agent {name}`), so it cannot be a task name")
    return name


# YAML already gives real numbers and booleans; lax coercion would read `max_changed_files: true` as 1.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]


def _dollars(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | None):
        raise ValueError("must be an amount in US dollars, like 2.50, or null")
    return value


Dollars = Annotated[float, BeforeValidator(_dollars)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TaskName = Annotated[str, StringConstraints(pattern=NAME_PATTERN), AfterValidator(_check_task_name)]


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} `{value}` is listed twice")
        seen.add(value)
    return values


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSpec(_Section):
    """How to run one agent: a built-in adapter, or any program (`adapter: command`)."""

    adapter: AdapterName = Field(
        default="command",
        description="claude | codex | aider | gemini | command. Defaults to the agent's name for built-in agents, "
        "otherwise to `command`.",
    )
    command: tuple[str, ...] | None = Field(
        default=None,
        description="For `adapter: command`: the argv (a list, never a shell string). `{prompt_file}` and "
        "`{workdir}` are replaced by the prompt file's path and the checkout's path.",
    )
    env: tuple[str, ...] = Field(
        default=(),
        description="Names of environment variables passed through from the runner; nothing else is. Only names "
        "the server's operator allows (KICKOFF_AGENT_ENV) may be listed.",
    )
    model: str | None = Field(default=None, description="The model to ask the agent for; null for its default.")
    network: Literal["host", "none"] = Field(
        default="host",
        description="The agent's network in its sandbox: `host` (the runner's; agents call their model's API) or "
        "`none` (no network at all, not even the runner's loopback).",
    )

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                'must be a list of arguments, not a shell string, e.g. ["python", "tools/fix.py", "{prompt_file}"]'
            )
        return value

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value or not value[0].strip():
            raise ValueError("must name a program as its first item")
        for item in value:
            for placeholder in _PLACEHOLDER.findall(item):
                if placeholder not in COMMAND_PLACEHOLDERS:
                    raise ValueError(f"`{{{placeholder}}}` is not a placeholder; use {{prompt_file}} or {{workdir}}")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"`{name}` is not an environment variable name (letters, digits and _)")
            if is_kickoff_env(name):
                raise ValueError(f"`{name}` is one of Kickoff's own secrets or tokens and is never passed to an agent")
        return _unique(value, "variable")

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty; use null for the agent's default model")
        return value

    @model_validator(mode="after")
    def _command_matches_adapter(self) -> AgentSpec:
        if self.adapter == "command" and self.command is None:
            raise ValueError(
                "`command` is required with `adapter: command` (or set `adapter` to claude, codex, aider or gemini)"
            )
        if self.adapter != "command" and self.command is not None:
            raise ValueError(f"`command` is only used with `adapter: command`, not with `adapter: {self.adapter}`")
        return self


class TaskSpec(_Section):
    """A task: label `agent:<name>` and command `/agent <name>`; fans out to agents × attempts."""

    agents: tuple[Name, ...] = Field(
        default=("claude",), min_length=1, description="The agents to run, one run per agent and attempt."
    )
    attempts: Int = Field(default=1, ge=1, le=MAX_ATTEMPTS, description="Runs per agent.")
    output: Output = Field(
        default="pr", description="`pr`: a pull request per run; `report`: a Markdown report (research)."
    )
    prompt: str | None = Field(
        default=None,
        max_length=20_000,
        description="Instructions for this task, added to the prompt before the issue text.",
    )
    description: str = Field(default="", max_length=300, description="One line shown by `/agent help`.")
    judge: Name | None = Field(
        default=None,
        description="An agent that ranks the fan-out's attempts once they have ended: it reads the issue and every "
        "attempt's diff, read-only, and answers a JSON ranking; Kickoff falls back to the evidence ranking (and says "
        "so) when it fails or answers nonsense. null: ranked on evidence only.",
    )
    enabled: Bool = Field(default=True, description="false turns the task's label and command off.")

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "agent")


class Limits(_Section):
    max_parallel_runs: Int = Field(default=3, ge=1, le=100, description="Runs at once in this repository.")
    max_open_prs: Int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Review capacity: no new run starts while this many agent pull requests await review (a "
        "fan-out's siblings count as one: they take one review slot).",
    )
    run_timeout_minutes: Int = Field(default=30, ge=1, le=720, description="A run is stopped after this long.")
    agent_idle_minutes: Int = Field(
        default=5, ge=1, le=720,
        description="An agent that prints nothing and changes no file this long is stopped as timed out.",
    )
    max_fix_attempts: Int = Field(
        default=2, ge=0, le=10, description="Automatic fix runs on red CI or conflicts, per pull request; 0 disables."
    )
    max_changed_files: Int = Field(
        default=200, ge=1, le=100_000, description="A run that changes more files fails and pushes nothing."
    )
    max_cost_usd: Dollars | None = Field(
        default=None, gt=0, le=10_000,
        description="Per run, in US dollars, where the agent can be bounded: Claude Code stops itself there "
        "(--max-budget-usd); aider and `command` agents that print their cost are stopped by the runner; codex and "
        "gemini report no cost and are not bounded. null: no bound.",
    )
    daily_cost_usd: Dollars | None = Field(
        default=None, gt=0, le=1_000_000,
        description="Per repository and UTC day, in US dollars: once the runs finished today cost this much, no "
        "new run starts until 00:00 UTC (runs already started finish). null: no daily budget.",
    )


class Verify(_Section):
    command: str | None = Field(
        default=None,
        description="A shell command the runner runs after the agent, e.g. `pytest -q`; a failure opens a draft PR.",
    )

    @field_validator("command")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty; use null for no verify step")
        return value


class Permissions(_Section):
    min_permission: Permission = Field(
        default="write",
        description="The least repository permission a person needs to trigger Kickoff. "
        "`none` lets anyone who can comment trigger runs.",
    )
    allow_users: tuple[str, ...] = Field(default=(), description="Logins allowed whatever their permission.")
    allow_bots: tuple[str, ...] = Field(
        default=(), description="Bot logins allowed to trigger, exactly (e.g. `renovate[bot]`); others are ignored."
    )

    @field_validator("allow_users")
    @classmethod
    def _check_users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for login in value:
            if not _LOGIN.match(login):
                raise ValueError(f"`{login}` is not a GitHub login")
        return _unique(tuple(login.lower() for login in value), "login")

    @field_validator("allow_bots")
    @classmethod
    def _check_bots(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for login in value:
            if not _BOT_LOGIN.match(login):
                raise ValueError(f"`{login}` is not a GitHub bot login (like `renovate[bot]`)")
        return _unique(tuple(login.lower() for login in value), "login")


class PullRequests(_Section):
    draft: Bool = Field(default=False, description="Open agent pull requests as drafts.")
    title: str = Field(
        default="{task}: {issue_title} (#{issue}) [{agent}]",
        min_length=1,
        max_length=200,
        description="Title template; placeholders {task}, {issue_title}, {issue}, {agent}; `{{` and `}}` for braces.",
    )
    labels: tuple[Annotated[str, StringConstraints(min_length=1, max_length=50)], ...] = Field(
        default=("kickoff",), description="Labels added to every agent pull request."
    )
    request_review: Bool = Field(default=True, description="Request a review from the person who triggered the run.")
    research_folder: str = Field(
        default="research", description="Where `output: report` tasks write their report, relative to the repo root."
    )
    publish_incomplete: Bool = Field(
        default=True,
        description="A run stopped by its timeout, its idle watchdog or `limits.max_cost_usd` after changing files "
        "opens a draft pull request marked incomplete, with the reason (after the same protected-path and size "
        "checks). false: such a run pushes nothing.",
    )

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str) -> str:
        try:
            fields = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"is not a valid template ({exc}); write `{{{{` and `}}}}` for literal braces") from None
        for _literal, field, spec, conversion in fields:
            if field is None:
                continue
            if field not in TITLE_PLACEHOLDERS or spec or conversion:
                allowed = ", ".join(f"{{{name}}}" for name in sorted(TITLE_PLACEHOLDERS))
                raise ValueError(f"`{{{field}}}` is not a placeholder; use {allowed}")
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "label")

    @field_validator("research_folder")
    @classmethod
    def _check_folder(cls, value: str) -> str:
        segments = value.strip("/").split("/")
        if value.startswith("/") or not all(_PATH_SEGMENT.match(s) and s not in {".", ".."} for s in segments):
            raise ValueError(
                "must be a relative folder path of letters, digits, `.`, `_` and `-`, "
                "not starting with `.` (no `..`, no hidden folders)"
            )
        return "/".join(segments)


class Queue(_Section):
    enabled: Bool = Field(default=True, description="Keep the review-order queue and its check.")
    review_window: Int = Field(default=1, ge=1, le=50, description='How many PRs are "next for review" at once.')
    merge: Literal["manual", "auto"] = Field(
        default="manual", description="`auto`: Kickoff merges the head once it is approved and green."
    )
    merge_method: Literal["merge", "squash", "rebase"] = Field(default="squash")
    update_method: Literal["merge", "rebase", "agent"] = Field(
        default="merge", description="How the next head is brought up to date with its base."
    )
    aging_hours: Int = Field(
        default=24, ge=0, le=10_000, description="A waiting PR rises one priority band per this many hours; 0: never."
    )
    hold_overlaps: Bool = Field(default=True, description="Hold a PR that changes files a PR ahead of it changes.")
    close_siblings: Bool = Field(
        default=True, description="When one PR of a fan-out merges, close the others as superseded."
    )
    check_name: str = Field(default="review-queue", min_length=1, max_length=100)


class CrossCheckError(ValueError):
    """Problems found across sections; each carries the key path it belongs to."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, path))}: {message}" for path, message in problems))
        self.problems = problems


class RepoConfig(_Section):
    """The whole of `.github/kickoff.yml`, after merging over the org's defaults."""

    agents: dict[Name, AgentSpec] = Field(
        default_factory=lambda: _builtin_agents(),
        description="Agent name → how to run it. Built-ins: claude, codex, aider, gemini.",
    )
    tasks: dict[TaskName, TaskSpec] = Field(
        default_factory=lambda: _builtin_tasks(),
        description="Task name → label `agent:<name>` and command `/agent <name>`. Built-ins: research, fix, "
        "implement.",
    )
    runner: RunnerName | None = Field(
        default=None,
        description="local | github-actions | kubernetes | fly, among the backends the server's operator enables "
        "(KICKOFF_RUNNERS); null: the server's KICKOFF_RUNNER.",
    )
    limits: Limits = Field(default_factory=Limits)
    protected_paths: tuple[Annotated[str, StringConstraints(min_length=1, max_length=300)], ...] = Field(
        default=(".github/workflows/**", ".github/kickoff.yml", ".gitmodules", "**/.gitattributes"),
        description="Globs; a run that touches a matching path fails and nothing is pushed.",
    )
    verify: Verify = Field(default_factory=Verify)
    permissions: Permissions = Field(default_factory=Permissions)
    pull_requests: PullRequests = Field(default_factory=PullRequests)
    queue: Queue = Field(default_factory=Queue)

    @field_validator("agents", mode="before")
    @classmethod
    def _with_builtin_agents(cls, value: object) -> object:
        return _overlay_builtins(BUILTIN_AGENTS, value)

    @field_validator("tasks", mode="before")
    @classmethod
    def _with_builtin_tasks(cls, value: object) -> object:
        return _overlay_builtins(BUILTIN_TASKS, value)

    @model_validator(mode="after")
    def _tasks_name_defined_agents(self) -> RepoConfig:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for task_name, task in self.tasks.items():
            for index, agent in enumerate(task.agents):
                if agent not in self.agents:
                    defined = ", ".join(sorted(self.agents))
                    problems.append(
                        (
                            ("tasks", task_name, "agents", index),
                            f"agent `{agent}` is not defined; define it under `agents:` or use one of: {defined}",
                        )
                    )
            if task.judge is not None and task.judge not in self.agents:
                defined = ", ".join(sorted(self.agents))
                problems.append((("tasks", task_name, "judge"),
                                 f"agent `{task.judge}` is not defined; define it under `agents:` or use one of: "
                                 f"{defined}"))
        if problems:
            raise CrossCheckError(problems)
        return self

    def task(self, name: str) -> TaskSpec | None:
        """The enabled task called `name` (case-insensitive), or None."""
        spec = self.tasks.get(name.lower())
        return spec if spec is not None and spec.enabled else None

    def enabled_tasks(self) -> dict[str, TaskSpec]:
        return {name: spec for name, spec in self.tasks.items() if spec.enabled}


def _overlay_builtins(builtins: Mapping[str, Mapping[str, Any]], value: object) -> object:
    """Built-in entries with the file's keys laid over them; anything not a mapping is left for pydantic to reject."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return value
    merged: dict[object, object] = {name: dict(spec) for name, spec in builtins.items()}
    for name, spec in value.items():
        if spec is None:
            spec = {}
        base = builtins.get(name) if isinstance(name, str) else None
        if base is not None and isinstance(spec, Mapping):
            merged[name] = {**base, **spec}
        else:
            merged[name] = spec
    return merged


def _builtin_agents() -> dict[str, AgentSpec]:
    return {name: AgentSpec.model_validate(spec) for name, spec in BUILTIN_AGENTS.items()}


def _builtin_tasks() -> dict[str, TaskSpec]:
    return {name: TaskSpec.model_validate(spec) for name, spec in BUILTIN_TASKS.items()}
