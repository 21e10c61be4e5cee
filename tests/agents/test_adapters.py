"""Each adapter's argv, environment and output parsing, against recorded outputs of the real CLIs (tests/agents/
samples/: claude_success.json and codex_reconnecting.jsonl and gemini_error_stderr.json were printed by the real
programs; the others follow the shapes their sources and docs define)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bot.agents import ADAPTERS, AgentContext, AgentOutput, agent_environment, get_adapter, is_forbidden
from bot.agents.base import trailing_json_object
from bot.agents.command import CommandError
from bot.runspec import AgentCommand, Usage

SAMPLES = Path(__file__).parent / "samples"
WORKDIR = Path("/ws/repo")
PROMPT = Path("/ws/prompt.md")
HOME = Path("/ws/home")


def context(adapter: str, model: str | None = None, command: tuple[str, ...] = (), env: dict[str, str] | None = None,
            sandboxed: bool = False) -> AgentContext:
    agent = AgentCommand.model_validate({"name": adapter, "adapter": adapter, "model": model, "command": command})
    return AgentContext(agent=agent, workdir=WORKDIR, prompt_file=PROMPT, home=HOME, env=env or {},
                        sandboxed=sandboxed)


def output(stdout: str = "", transcript: str | None = None, exit_code: int | None = 0) -> AgentOutput:
    return AgentOutput(exit_code=exit_code, stdout=stdout, transcript=stdout if transcript is None else transcript)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_the_registry_knows_every_adapter_the_spec_allows() -> None:
    assert set(ADAPTERS) == {"claude", "codex", "aider", "gemini", "command"}
    with pytest.raises(KeyError, match="known: aider, claude, codex, command, gemini"):
        get_adapter("cursor")


@pytest.mark.parametrize(
    ("adapter", "model", "argv", "stdin"),
    [
        ("claude", None, ("claude", "-p", "--output-format", "json", "--permission-mode", "acceptEdits"), PROMPT),
        ("claude", "opus", ("claude", "-p", "--output-format", "json", "--permission-mode", "acceptEdits",
                            "--model", "opus"), PROMPT),
        ("codex", None, ("codex", "exec", "--json", "--color", "never", "--sandbox", "workspace-write",
                         "--skip-git-repo-check", "--ephemeral", "--cd", str(WORKDIR), "-"), PROMPT),
        ("codex", "gpt-5-codex", ("codex", "exec", "--json", "--color", "never", "--sandbox", "workspace-write",
                                  "--skip-git-repo-check", "--ephemeral", "--cd", str(WORKDIR), "--model",
                                  "gpt-5-codex", "-"), PROMPT),
        ("gemini", "gemini-2.5-pro", ("gemini", "--output-format", "json", "--approval-mode", "auto_edit",
                                      "--skip-trust", "--model", "gemini-2.5-pro", "--prompt",
                                      "Carry out the task described in the input above, editing the files in the "
                                      "current directory."), PROMPT),
        ("aider", "sonnet", ("aider", "--message-file", str(PROMPT), "--yes-always", "--no-auto-commits",
                             "--no-dirty-commits", "--no-gitignore", "--no-check-update", "--no-analytics",
                             "--no-pretty", "--no-stream", "--no-show-model-warnings", "--no-show-release-notes",
                             "--chat-history-file", str(HOME / ".aider.chat.history.md"), "--input-history-file",
                             str(HOME / ".aider.input.history"), "--model", "sonnet"), None),
    ],
)
def test_argv(adapter: str, model: str | None, argv: tuple[str, ...], stdin: Path | None) -> None:
    invocation = get_adapter(adapter).invocation(context(adapter, model))
    assert invocation.argv == argv
    assert invocation.stdin == stdin
    assert not any("prompt" in arg and "Fix" in arg for arg in invocation.argv)  # the prompt never goes in argv


def test_command_argv_substitutes_placeholders_item_by_item() -> None:
    command = ("python", "tools/fix.py", "--prompt={prompt_file}", "{workdir}", "literal {braces}; rm -rf /")
    invocation = get_adapter("command").invocation(context("command", command=command))
    assert invocation.argv == ("python", "tools/fix.py", f"--prompt={PROMPT}", str(WORKDIR),
                               "literal {braces}; rm -rf /")
    assert invocation.stdin is None
    with pytest.raises(CommandError):
        get_adapter("command").invocation(context("command", command=()))


def test_claude_fixed_environment() -> None:
    invocation = get_adapter("claude").invocation(context("claude"))
    assert invocation.env == {"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
                              "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def test_codex_gets_the_vendors_key_and_endpoint_names_through_its_own_config_in_home() -> None:
    ctx = context("codex", env={"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"})
    invocation = get_adapter("codex").invocation(ctx)
    assert invocation.env == {"CODEX_HOME": str(HOME / ".codex")}
    config = tomllib.loads(invocation.files[".codex/config.toml"])
    assert config["model_provider"] == "kickoff"
    assert config["model_providers"]["kickoff"] == {
        "name": "OpenAI (via Kickoff)", "base_url": "http://127.0.0.1:9/v1", "env_key": "OPENAI_API_KEY",
        "wire_api": "responses", "supports_websockets": False}
    assert "sk-1" not in invocation.files[".codex/config.toml"]  # the key stays in the environment


def test_codex_without_an_endpoint_uses_openais_and_reads_codex_api_key_too() -> None:
    invocation = get_adapter("codex").invocation(context("codex", env={"CODEX_API_KEY": "sk-2"}))
    provider = tomllib.loads(invocation.files[".codex/config.toml"])["model_providers"]["kickoff"]
    assert (provider["base_url"], provider["env_key"]) == ("https://api.openai.com/v1", "CODEX_API_KEY")


def test_codex_without_a_key_is_left_to_its_own_configuration() -> None:
    invocation = get_adapter("codex").invocation(context("codex", env={"CODEX_HOME": "/elsewhere"}))
    assert invocation.files == {}
    assert invocation.env == {}


def test_codex_runs_commands_unsandboxed_only_inside_the_runners_sandbox() -> None:
    argv = get_adapter("codex").invocation(context("codex", sandboxed=True)).argv
    assert argv[argv.index("--sandbox") + 1] == "danger-full-access"


def test_claude_gets_every_tool_only_inside_the_runners_sandbox() -> None:
    inside = get_adapter("claude").invocation(context("claude", sandboxed=True))
    assert inside.argv[inside.argv.index("--permission-mode") + 1] == "bypassPermissions"
    assert inside.env["IS_SANDBOX"] == "1"
    outside = get_adapter("claude").invocation(context("claude"))
    assert outside.argv[outside.argv.index("--permission-mode") + 1] == "acceptEdits"
    assert "IS_SANDBOX" not in outside.env


def test_aider_pins_the_openai_endpoint_whenever_it_has_an_openai_key() -> None:
    def endpoint(env: dict[str, str]) -> str | None:
        argv = get_adapter("aider").invocation(context("aider", env=env)).argv
        return argv[argv.index("--openai-api-base") + 1] if "--openai-api-base" in argv else None

    assert endpoint({"OPENAI_API_KEY": "k", "OPENAI_API_BASE": "http://127.0.0.1:9/v1"}) == "http://127.0.0.1:9/v1"
    assert endpoint({"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:8/v1"}) == "http://127.0.0.1:8/v1"
    assert endpoint({"OPENAI_API_KEY": "k"}) == "https://api.openai.com/v1"
    assert endpoint({"ANTHROPIC_API_KEY": "k"}) is None


def test_gemini_selects_key_auth_in_its_own_settings_and_gets_its_shell_only_in_the_runners_sandbox() -> None:
    adapter = get_adapter("gemini")
    keyed = adapter.invocation(context("gemini", env={"GEMINI_API_KEY": "AIza-secret", "GOOGLE_GEMINI_BASE_URL": "x"}))
    settings = json.loads(keyed.files[".gemini/settings.json"])
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert "AIza-secret" not in keyed.files[".gemini/settings.json"]  # the key stays in the environment
    assert adapter.invocation(context("gemini")).files == {}
    argv = adapter.invocation(context("gemini", sandboxed=True)).argv
    assert argv[argv.index("--approval-mode") + 1] == "yolo"
    argv = adapter.invocation(context("gemini")).argv
    assert argv[argv.index("--approval-mode") + 1] == "auto_edit"


def test_agent_environment_is_an_allow_list() -> None:
    source = {
        "PATH": "/usr/bin", "LANG": "en_US.UTF-8", "TERM": "xterm", "HOME": "/root", "USER": "root",
        "ANTHROPIC_API_KEY": "sk-ant", "KICKOFF_GIT_TOKEN": "t", "KICKOFF_RUN_SECRET": "s", "PRIVATE_KEY": "k",
        "WEBHOOK_SECRET": "w", "DATABASE_URL": "d", "GITHUB_TOKEN": "g", "GH_TOKEN": "g", "KICKOFF_OTHER": "x",
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    names = ["ANTHROPIC_API_KEY", "KICKOFF_GIT_TOKEN", "KICKOFF_RUN_SECRET", "PRIVATE_KEY", "WEBHOOK_SECRET",
             "DATABASE_URL", "GITHUB_TOKEN", "GH_TOKEN", "kickoff_other", "NOT_SET"]
    env = agent_environment(source, names, home=HOME, tmpdir=Path("/ws/tmp"), fixed={"DISABLE_TELEMETRY": "1"})
    assert env == {"PATH": "/usr/bin", "LANG": "en_US.UTF-8", "TERM": "xterm", "HOME": str(HOME),
                   "TMPDIR": "/ws/tmp", "ANTHROPIC_API_KEY": "sk-ant", "DISABLE_TELEMETRY": "1"}
    assert is_forbidden("kickoff_git_token")
    assert not is_forbidden("OPENAI_API_KEY")


def test_agent_environment_defaults() -> None:
    env = agent_environment({}, [], home=HOME, tmpdir=Path("/t"))
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb", "HOME": str(HOME),
                   "TMPDIR": "/t"}


def test_claude_reads_the_real_clis_result() -> None:
    report = get_adapter("claude").parse(output(sample("claude_success.json")))
    assert report.summary == "Wrote FIXED.txt with the fix."
    assert report.error is None
    assert report.usage.cost_usd == pytest.approx(0.012112)
    assert report.usage.model_copy(update={"cost_usd": None}) == Usage(input_tokens=2468, output_tokens=112, turns=2,
                                                                      model="claude-opus-5-5")


def test_claude_counts_cache_tokens_as_input_and_reports_errors() -> None:
    report = get_adapter("claude").parse(output(sample("claude_error_max_turns.json"), exit_code=1))
    assert report.error == "Claude Code reported an error (error_max_turns)"
    assert report.summary == ""
    assert report.usage.input_tokens == 31 + 20412 + 180233
    assert report.usage.output_tokens == 4120
    assert report.usage.cost_usd == pytest.approx(0.5132)
    assert report.usage.turns == 11
    assert report.usage.model == "claude-sonnet-4-5"  # the model that cost the most


def test_claude_stream_json_and_noise() -> None:
    report = get_adapter("claude").parse(output(sample("claude_stream.jsonl")))
    assert report.summary == "Fixed the off-by-one."
    assert report.usage.input_tokens == 25012
    noisy = "npm WARN something\n" + sample("claude_success.json")
    assert get_adapter("claude").parse(output(noisy)).usage.output_tokens == 112
    assert get_adapter("claude").parse(output("Error: Invalid API key\n", exit_code=1)).usage == Usage()


def test_codex_reads_the_last_cumulative_usage_and_the_last_message() -> None:
    report = get_adapter("codex").parse(output(sample("codex_exec.jsonl")))
    assert report.summary == "Changed `answer()` to return 42 and kept the signature."
    assert report.usage == Usage(input_tokens=24013, output_tokens=512)
    assert report.error is None


def test_codex_legacy_token_count_events() -> None:
    report = get_adapter("codex").parse(output(sample("codex_legacy.jsonl")))
    assert report.summary == "Fixed the off-by-one in answer()."
    assert report.usage == Usage(input_tokens=11200, output_tokens=301)


def test_codex_turn_failed_is_an_error() -> None:
    report = get_adapter("codex").parse(output(sample("codex_failed.jsonl"), exit_code=1))
    assert report.error == "Codex turn failed: unexpected status 401 Unauthorized: Incorrect API key provided"


def test_codex_reconnect_errors_are_not_fatal_once_a_turn_completes() -> None:
    stream = sample("codex_reconnecting.jsonl")
    assert get_adapter("codex").parse(output(stream, exit_code=1)).error == (
        "Codex error: Reconnecting... waiting for network (Connection failed: error sending request)"
    )
    recovered = stream + '{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}\n'
    assert get_adapter("codex").parse(output(recovered)).error is None


def test_gemini_sums_models_and_reads_the_response() -> None:
    report = get_adapter("gemini").parse(output(sample("gemini_success.json")))
    assert report.summary.startswith("I changed `answer()`")
    assert report.usage == Usage(input_tokens=24939 + 800, output_tokens=412 + 154 + 20, turns=4,
                                 model="gemini-2.5-pro")
    assert report.error is None


def test_gemini_error_on_stderr() -> None:
    report = get_adapter("gemini").parse(output("", transcript=sample("gemini_error_stderr.json"), exit_code=41))
    assert report.error is not None
    assert report.error.startswith("Gemini CLI error: Please set an Auth method")


def test_aider_cost_lines() -> None:
    report = get_adapter("aider").parse(output(transcript=sample("aider.txt")))
    assert report.summary == ""
    assert report.usage == Usage(input_tokens=2400 + 3100, output_tokens=310 + 95, cost_usd=0.01, turns=2)
    assert get_adapter("aider").parse(output("no cost lines")).usage == Usage()


def test_command_reads_a_trailing_json_report() -> None:
    stdout = 'working\n{"summary": "Did it.", "usage": {"input_tokens": 5, "output_tokens": "many", "cost_usd": 0.5}}\n'
    report = get_adapter("command").parse(output(stdout))
    assert report.summary == "Did it."
    assert report.usage == Usage(input_tokens=5, cost_usd=0.5)
    failed = get_adapter("command").parse(output('{"error": "could not reproduce"}'))
    assert failed.error == "could not reproduce"


@pytest.mark.parametrize(
    "stdout",
    [
        "plain text",
        '{"summary": "not at the end"}\nmore text\n',
        '{"other": 1}',
        "[1, 2, 3]",
        '{"summary": "unterminated"',
    ],
)
def test_command_ignores_output_without_a_trailing_report(stdout: str) -> None:
    report = get_adapter("command").parse(output(stdout))
    assert report.summary == ""
    assert report.usage == Usage()
    assert report.error is None


def test_trailing_json_object_finds_pretty_printed_and_last_line_objects() -> None:
    assert trailing_json_object('log {"a": 1}\n{\n  "b": {\n    "c": [\n      {"d": 1}\n    ]\n  }\n}\n') == {
        "b": {"c": [{"d": 1}]}
    }
    assert trailing_json_object('{"a": 1}\n{"b": 2}\n') == {"b": 2}
    assert trailing_json_object("") is None


def test_summaries_are_bounded() -> None:
    stdout = '{"summary": "' + "x" * 20_000 + '"}'
    assert len(get_adapter("command").parse(output(stdout)).summary) == 8_000


def test_claude_gets_the_cost_budget_as_its_own_bound() -> None:
    agent = AgentCommand.model_validate({"name": "claude", "adapter": "claude"})
    bounded = AgentContext(agent=agent, workdir=WORKDIR, prompt_file=PROMPT, home=HOME, max_cost_usd=2.5)
    assert get_adapter("claude").invocation(bounded).argv == (
        "claude", "-p", "--output-format", "json", "--permission-mode", "acceptEdits", "--max-budget-usd", "2.5")
    tiny = AgentContext(agent=agent, workdir=WORKDIR, prompt_file=PROMPT, home=HOME, max_cost_usd=0.00001)
    assert get_adapter("claude").invocation(tiny).argv[-2:] == ("--max-budget-usd", "0.00001")


@pytest.mark.parametrize("adapter", ["codex", "aider", "gemini", "command"])
def test_only_claude_takes_the_budget_on_its_command_line(adapter: str) -> None:
    command = ("house-agent", "{prompt_file}") if adapter == "command" else ()
    agent = AgentCommand.model_validate({"name": adapter, "adapter": adapter, "command": command})
    bounded = AgentContext(agent=agent, workdir=WORKDIR, prompt_file=PROMPT, home=HOME, max_cost_usd=2.5)
    assert get_adapter(adapter).invocation(bounded) == get_adapter(adapter).invocation(context(adapter,
                                                                                               command=command))


def test_claude_stopped_at_its_budget_is_not_a_failure() -> None:
    report = get_adapter("claude").parse(output(sample("claude_error_max_budget_usd.json"), exit_code=1))
    assert (report.budget_reached, report.error) == (True, None)
    assert report.usage.cost_usd == 1.0431
    turns = get_adapter("claude").parse(output(sample("claude_error_max_turns.json")))
    assert turns.budget_reached is False
    assert turns.error == "Claude Code reported an error (error_max_turns)"


def test_which_adapters_report_their_cost_as_they_go() -> None:
    streaming = {name for name, adapter in ADAPTERS.items() if adapter.running_cost is not None}
    assert streaming == {"aider", "command"}
    aider = get_adapter("aider").running_cost
    assert aider is not None
    assert aider(sample("aider.txt")) == 0.01
    assert aider("Tokens: 1k sent, 2 received. Cost: $1,204.50 message, $1,310.25 session.\n") == 1310.25
    assert aider("Applied edit to src/app.py\n") is None
    command = get_adapter("command").running_cost
    assert command is not None
    assert command('{"usage": {"cost_usd": 0.4}}\nthinking\n{"usage": {"cost_usd": 0.9}}\n{"usage": {}}\n') == 0.9
    assert command('{"usage": {"cost_usd": "a lot"}}\n{"cost_usd": 5}\nplain\n') is None
