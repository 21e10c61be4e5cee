"""RepoConfig: defaults, built-ins, every section's rules, and the problems a user sees for a bad file."""

from __future__ import annotations

import pydantic
import pytest

from bot.config import ConfigError, RepoConfig, validate_text
from bot.config.model import BUILTIN_AGENTS, BUILTIN_TASKS
from tests.config.examples import DESIGN_EXAMPLE


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_text(text, "kickoff.yml")
    return caught.value.messages()


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# ---- defaults ------------------------------------------------------------------------------------------------------


def test_an_empty_file_is_all_defaults() -> None:
    for text in ("", "# just a comment\n", "---\n", "{}"):
        assert validate_text(text) == RepoConfig()


def test_defaults() -> None:
    config = RepoConfig()
    assert set(config.agents) == {"claude", "codex", "aider", "gemini"}
    assert config.agents["claude"].adapter == "claude"
    assert config.agents["claude"].env == ("ANTHROPIC_API_KEY",)
    assert set(config.tasks) == {"research", "fix", "implement"}
    assert config.tasks["research"].output == "report"
    assert config.tasks["fix"].output == "pr"
    assert config.tasks["fix"].agents == ("claude",)
    assert config.tasks["fix"].attempts == 1
    assert config.runner is None
    assert config.limits.max_parallel_runs == 3
    assert config.limits.max_open_prs == 5
    assert config.limits.run_timeout_minutes == 30
    assert config.limits.max_fix_attempts == 2
    assert config.limits.max_changed_files == 200
    assert (config.limits.max_cost_usd, config.limits.daily_cost_usd) == (None, None)
    assert config.pull_requests.publish_incomplete is True
    assert config.protected_paths == (".github/workflows/**", ".github/kickoff.yml", ".gitmodules", "**/.gitattributes")
    assert config.verify.command is None
    assert config.permissions.min_permission == "write"
    assert config.permissions.allow_users == ()
    assert config.pull_requests.title == "{task}: {issue_title} (#{issue}) [{agent}]"
    assert config.pull_requests.labels == ("kickoff",)
    assert config.pull_requests.draft is False
    assert config.pull_requests.request_review is True
    assert config.pull_requests.research_folder == "research"
    assert config.queue.enabled is True
    assert config.queue.review_window == 1
    assert config.queue.merge == "manual"
    assert config.queue.merge_method == "squash"
    assert config.queue.update_method == "merge"
    assert config.queue.aging_hours == 24
    assert config.queue.hold_overlaps is True
    assert config.queue.close_siblings is True
    assert config.queue.check_name == "review-queue"


def test_the_design_example_is_valid() -> None:
    config = validate_text(DESIGN_EXAMPLE)
    house = config.agents["house-fixer"]
    assert house.adapter == "command"
    assert house.command == ("python", "tools/fix.py", "{prompt_file}")
    assert house.env == ("HOUSE_API_KEY",)
    assert config.tasks["fix"].agents == ("claude", "codex")
    assert config.tasks["research"].output == "report"
    assert config.tasks["implement"] == RepoConfig().tasks["implement"]
    assert config.runner == "local"
    assert {"claude", "codex", "aider", "gemini"} <= set(config.agents)


def test_budgets_take_whole_and_fractional_dollars() -> None:
    config = validate_text("limits: {max_cost_usd: 2, daily_cost_usd: 12.5}\n"
                           "pull_requests: {publish_incomplete: false}\n")
    assert (config.limits.max_cost_usd, config.limits.daily_cost_usd) == (2.0, 12.5)
    assert config.pull_requests.publish_incomplete is False


def test_the_config_is_immutable() -> None:
    config = RepoConfig()
    with pytest.raises(pydantic.ValidationError):
        config.limits.max_open_prs = 9  # type: ignore[misc]


# ---- built-ins -----------------------------------------------------------------------------------------------------


def test_a_built_in_agent_keeps_its_defaults_for_keys_the_file_omits() -> None:
    config = validate_text("agents:\n  claude: {model: claude-opus-4}\n  codex:\n")
    assert config.agents["claude"].model == "claude-opus-4"
    assert config.agents["claude"].adapter == "claude"
    assert config.agents["claude"].env == tuple(BUILTIN_AGENTS["claude"]["env"])
    assert config.agents["codex"].adapter == "codex"


def test_a_built_in_task_keeps_its_defaults_for_keys_the_file_omits() -> None:
    config = validate_text("tasks:\n  research: {agents: [codex]}\n")
    assert config.tasks["research"].output == BUILTIN_TASKS["research"]["output"]
    assert config.tasks["research"].agents == ("codex",)


def test_custom_tasks_and_disabled_built_ins() -> None:
    config = validate_text("tasks:\n  docs: {agents: [gemini], prompt: Write docs.}\n  implement: {enabled: false}\n")
    assert config.tasks["docs"].agents == ("gemini",)
    assert config.tasks["docs"].prompt == "Write docs."
    assert config.task("docs") is not None
    assert config.task("DOCS") is not None
    assert config.task("implement") is None
    assert "implement" not in config.enabled_tasks()


def test_task_agents_resolve_to_built_ins_and_custom_agents() -> None:
    config = validate_text("agents:\n  mine: {adapter: aider, model: gpt-5}\ntasks:\n  fix: {agents: [mine, gemini]}\n")
    assert [config.agents[name].adapter for name in config.tasks["fix"].agents] == ["aider", "gemini"]


# ---- agents --------------------------------------------------------------------------------------------------------


def test_a_custom_agent_needs_a_command_or_a_built_in_adapter() -> None:
    message = one_problem("agents:\n  mine: {model: x}\n")
    assert "agents.mine" in message
    assert "`command` is required" in message


def test_command_must_be_argv_not_a_shell_string() -> None:
    message = one_problem("agents:\n  mine: {adapter: command, command: 'python fix.py'}\n")
    assert "agents.mine.command" in message
    assert "not a shell string" in message


def test_command_placeholders_are_checked() -> None:
    assert validate_text("agents:\n  m: {command: [run, '{workdir}', '{prompt_file}']}\n").agents["m"].command
    message = one_problem("agents:\n  m: {command: [run, '{prompt}']}\n")
    assert "`{prompt}` is not a placeholder" in message


@pytest.mark.parametrize("command", ["[]", "['']"])
def test_command_must_name_a_program(command: str) -> None:
    assert "must name a program" in one_problem(f"agents:\n  m: {{command: {command}}}\n")


def test_command_is_only_for_the_command_adapter() -> None:
    assert "only used with `adapter: command`" in one_problem("agents:\n  claude: {command: [x]}\n")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("1ABC", "not an environment variable name"),
        ("A-B", "not an environment variable name"),
        ("PRIVATE_KEY", "never passed to an agent"),
        ("webhook_secret", "never passed to an agent"),
        ("GITHUB_TOKEN", "never passed to an agent"),
        ("KICKOFF_DATABASE", "never passed to an agent"),
    ],
)
def test_env_names_are_checked(name: str, fragment: str) -> None:
    message = one_problem(f"agents:\n  claude: {{env: ['{name}']}}\n")
    assert "agents.claude.env" in message
    assert fragment in message


def test_env_names_must_be_unique() -> None:
    assert "listed twice" in one_problem("agents:\n  claude: {env: [A, A]}\n")


def test_an_unknown_adapter() -> None:
    message = one_problem("agents:\n  claude: {adapter: copilot}\n")
    assert "agents.claude.adapter" in message
    assert "'command'" in message
    assert 'got "copilot"' in message


# ---- tasks ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Fix", "is not a valid name"),
        ("my task", "is not a valid name"),
        ("1st", "is not a valid name"),
        ("a" * 45, "is not a valid name"),
        ("cancel", "is a command"),
        ("help", "is a command"),
    ],
)
def test_task_names_are_label_safe_and_not_commands(name: str, fragment: str) -> None:
    message = one_problem(f"tasks:\n  '{name}': {{}}\n")
    assert fragment in message
    assert message.startswith("kickoff.yml:2:3: tasks")


def test_agent_names_are_checked_too() -> None:
    assert "is not a valid name" in one_problem("agents:\n  My.Agent: {adapter: codex}\n")


def test_a_task_naming_an_undefined_agent() -> None:
    message = one_problem("tasks:\n  fix:\n    agents: [claude, ghost]\n")
    assert message.startswith("kickoff.yml:3:22: tasks.fix.agents[1]:")
    assert "agent `ghost` is not defined" in message
    assert "claude" in message


def test_a_custom_task_defaults_to_claude_and_that_must_exist() -> None:
    assert validate_text("tasks:\n  docs: {}\n").tasks["docs"].agents == ("claude",)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tasks:\n  fix: {attempts: 0}\n", "greater than or equal to 1"),
        ("tasks:\n  fix: {attempts: 11}\n", "less than or equal to 10"),
        ("tasks:\n  fix: {output: issue}\n", "'pr' or 'report'"),
        ("tasks:\n  fix: {agents: []}\n", "at least 1"),
        ("tasks:\n  fix: {agents: [codex, codex]}\n", "listed twice"),
        ("tasks:\n  fix: {agents: codex}\n", "must be a list"),
    ],
)
def test_task_fields(text: str, fragment: str) -> None:
    message = one_problem(text)
    assert "tasks.fix" in message
    assert fragment in message


# ---- other sections ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("runner: docker\n", "runner", "'local', 'github-actions', 'kubernetes' or 'fly'"),
        ("limits: {max_parallel_runs: 0}\n", "limits.max_parallel_runs", "greater than or equal to 1"),
        ("limits: {max_open_prs: many}\n", "limits.max_open_prs", 'must be a valid integer (got "many")'),
        ("limits: {run_timeout_minutes: 1.5}\n", "limits.run_timeout_minutes", "valid integer"),
        ("limits: {max_fix_attempts: -1}\n", "limits.max_fix_attempts", "greater than or equal to 0"),
        ("limits: {max_changed_files: true}\n", "limits.max_changed_files", "valid integer"),
        ("limits: 5\n", "limits", "must be a mapping (got 5)"),
        ("limits: {max_cost_usd: 0}\n", "limits.max_cost_usd", "greater than 0"),
        ("limits: {max_cost_usd: true}\n", "limits.max_cost_usd", "an amount in US dollars, like 2.50, or null"),
        ("limits: {daily_cost_usd: '10'}\n", "limits.daily_cost_usd", "an amount in US dollars"),
        ("limits: {daily_cost_usd: -5}\n", "limits.daily_cost_usd", "greater than 0"),
        ("pull_requests: {publish_incomplete: 'no'}\n", "pull_requests.publish_incomplete", "valid boolean"),
        ("protected_paths: '**'\n", "protected_paths", "must be a list"),
        ("protected_paths: ['']\n", "protected_paths[0]", "at least 1 character"),
        ("verify: {command: ''}\n", "verify.command", "use null"),
        ("verify: {command: [pytest]}\n", "verify.command", "valid string"),
        ("permissions: {min_permission: owner}\n", "permissions.min_permission", "'triage'"),
        ("permissions: {allow_users: ['not a login']}\n", "permissions.allow_users", "not a GitHub login"),
        ("permissions: {allow_bots: ['evil[bot]x']}\n", "permissions.allow_bots", "bot login"),
        ("pull_requests: {title: '{task} {body}'}\n", "pull_requests.title", "`{body}` is not a placeholder"),
        ("pull_requests: {title: '{task!r}'}\n", "pull_requests.title", "is not a placeholder"),
        ("pull_requests: {title: '{task'}\n", "pull_requests.title", "not a valid template"),
        ("pull_requests: {labels: [a, a]}\n", "pull_requests.labels", "listed twice"),
        ("pull_requests: {research_folder: ../out}\n", "pull_requests.research_folder", "no `..`"),
        ("pull_requests: {research_folder: /abs}\n", "pull_requests.research_folder", "relative"),
        ("pull_requests: {research_folder: .git/x}\n", "pull_requests.research_folder", "no hidden folders"),
        ("queue: {review_window: 0}\n", "queue.review_window", "greater than or equal to 1"),
        ("queue: {merge: yes}\n", "queue.merge", "put the value in quotes"),
        ("queue: {merge_method: fast-forward}\n", "queue.merge_method", "'merge', 'squash' or 'rebase'"),
        ("queue: {update_method: cherry-pick}\n", "queue.update_method", "'agent'"),
        ("queue: {aging_hours: -1}\n", "queue.aging_hours", "greater than or equal to 0"),
        ("queue: {check_name: ''}\n", "queue.check_name", "at least 1 character"),
    ],
)
def test_section_fields(text: str, path: str, fragment: str) -> None:
    message = one_problem(text)
    assert f": {path}: " in message
    assert fragment in message


def test_values_that_are_normalized() -> None:
    config = validate_text(
        "permissions: {min_permission: none, allow_users: [Octocat], allow_bots: ['Renovate[bot]']}\n"
        "pull_requests: {research_folder: docs/research/, title: '{{agent}} {task}'}\n"
    )
    assert config.permissions.min_permission == "none"
    assert config.permissions.allow_users == ("octocat",)
    assert config.permissions.allow_bots == ("renovate[bot]",)
    assert config.pull_requests.research_folder == "docs/research"


# ---- unknown keys and several problems -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("limit: {}\n", "limit", "limits"),
        ("limits: {max_paralel_runs: 2}\n", "limits.max_paralel_runs", "max_parallel_runs"),
        ("agents:\n  claude: {modle: x}\n", "agents.claude.modle", "model"),
        ("tasks:\n  fix: {agent: [claude]}\n", "tasks.fix.agent", "agents"),
        ("queue: {merge_methd: squash}\n", "queue.merge_methd", "merge_method"),
    ],
)
def test_unknown_keys_are_reported_with_a_suggestion(text: str, path: str, suggestion: str) -> None:
    message = one_problem(text)
    assert f": {path}: unknown key" in message
    assert f"did you mean `{suggestion}`?" in message
    assert "allowed here:" in message


def test_every_problem_is_reported_with_its_line() -> None:
    found = problems("limits:\n  max_open_prs: 0\nqueue:\n  merge: sometimes\nextra: 1\n")
    assert found == [
        "kickoff.yml:2:3: limits.max_open_prs: must be greater than or equal to 1 (got 0)",
        "kickoff.yml:4:3: queue.merge: must be 'manual' or 'auto' (got \"sometimes\")",
        "kickoff.yml:5:1: extra: unknown key `extra` (allowed here: agents, tasks, runner, limits, protected_paths, "
        "verify, permissions, pull_requests, queue)",
    ]


def test_non_string_keys_are_reported() -> None:
    message = one_problem("tasks:\n  1: {}\n")
    assert "tasks[1]" in message
    assert "valid string" in message
