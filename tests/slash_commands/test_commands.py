"""The `/agent` slash-command parser: which lines are commands, options, errors, edited comments, help."""

from __future__ import annotations

import pytest

from bot.slash_commands import (
    MAX_COMMANDS_PER_BODY,
    RESERVED_VERBS,
    Command,
    CommandError,
    ParsedCommand,
    help_table,
    new_commands,
    parse_commands,
)


def only(body: str) -> ParsedCommand:
    results = parse_commands(body)
    assert len(results) == 1, results
    return results[0]


def command(body: str) -> Command:
    result = only(body)
    assert isinstance(result, Command), result
    return result


def error(body: str) -> CommandError:
    result = only(body)
    assert isinstance(result, CommandError), result
    return result


# ---- which lines are commands ----------------------------------------------------------------------------------------


def test_a_task_with_options_and_instructions() -> None:
    cmd = command("/agent fix --agents claude,codex --attempts 2 the login button does nothing")
    assert cmd.verb == "fix"
    assert cmd.is_task
    assert cmd.agents == ("claude", "codex")
    assert cmd.attempts == 2
    assert cmd.instructions == "the login button does nothing"
    assert cmd.line == 1


def test_a_task_without_options_has_none() -> None:
    cmd = command("/agent research")
    assert (cmd.agents, cmd.attempts, cmd.instructions) == (None, None, "")


def test_commands_are_found_on_any_line_with_their_line_numbers() -> None:
    body = "Thanks for the report.\n\n/agent research why is it slow\nsome text\n  /agent fix\n"
    results = parse_commands(body)
    assert [(r.verb, r.line) for r in results if isinstance(r, Command)] == [("research", 3), ("fix", 5)]


@pytest.mark.parametrize("line", ["/AGENT FIX", "/Agent Fix", "   /agent fix", "\t/agent fix", "/agent   fix  "])
def test_prefix_and_verb_are_case_insensitive_and_leading_space_is_allowed(line: str) -> None:
    assert command(line).verb == "fix"


@pytest.mark.parametrize(
    "body",
    [
        "/agentfoo fix",
        "/agent-fix",
        "/agent:fix",
        "please run /agent fix",
        "`/agent fix`",
        "- /agent fix",
        "/ agent fix",
        "agent fix",
    ],
)
def test_lines_that_are_not_commands(body: str) -> None:
    assert parse_commands(body) == []


def test_instructions_come_only_from_the_command_line() -> None:
    cmd = command("/agent fix the crash\nThe stack trace is below.\n/not a command")
    assert cmd.instructions == "the crash"


def test_crlf_and_lone_cr_newlines() -> None:
    results = parse_commands("hello\r\n/agent fix one\r/agent status\r\n")
    assert [(r.verb, r.line) for r in results if isinstance(r, Command)] == [("fix", 2), ("status", 3)]


def test_none_and_empty_bodies() -> None:
    assert parse_commands(None) == []
    assert parse_commands("") == []


# ---- code fences, quotes, comments, invisible characters ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "```\n/agent fix\n```",
        "~~~\n/agent fix\n~~~",
        "```markdown\n/agent fix\n```",
        "  ```\n/agent fix\n  ```",
        "````\n```\n/agent fix\n````",
        "~~~~\n~~~\n/agent fix\n~~~~",
        "```\n~~~\n/agent fix\n~~~\n```",
        "```\n/agent fix",
    ],
)
def test_commands_inside_code_fences_are_ignored(body: str) -> None:
    assert parse_commands(body) == []


def test_a_fence_closes_only_with_the_same_character_and_at_least_its_length() -> None:
    body = "````\n```\n/agent research\n````\n/agent fix\n"
    assert [r.verb for r in parse_commands(body)] == ["fix"]
    body = "```\ncode\n```\n/agent fix\n~~~\n/agent status\n~~~\n/agent queue"
    assert [r.verb for r in parse_commands(body)] == ["fix", "queue"]


def test_a_closing_fence_line_may_not_carry_text() -> None:
    body = "```\n``` not a close\n/agent fix\n```\n/agent status"
    assert [r.verb for r in parse_commands(body)] == ["status"]


def test_inline_code_with_backticks_in_the_info_string_is_not_a_fence() -> None:
    assert [r.verb for r in parse_commands("```foo``` inline\n/agent fix")] == ["fix"]


@pytest.mark.parametrize("body", ["> /agent fix", ">/agent fix", "  > /agent fix", "> > /agent fix", ">\t/agent fix"])
def test_quoted_commands_are_ignored(body: str) -> None:
    assert parse_commands(body) == []


def test_a_quote_does_not_hide_the_reply_after_it() -> None:
    body = "> /agent fix --attempts 3\n> earlier comment\n\n/agent status"
    assert [r.verb for r in parse_commands(body)] == ["status"]


def test_a_fence_opened_inside_a_quote_does_not_swallow_the_reply() -> None:
    body = "> ```\n> code\n\n/agent fix"
    assert [r.verb for r in parse_commands(body)] == ["fix"]


@pytest.mark.parametrize(
    "body",
    [
        "<!-- /agent fix -->",
        "<!--\n/agent fix\n-->",
        "<!-- template help\n/agent fix\n",
        "<!--\n```\n-->\n<!--\n/agent fix\n--!>",
    ],
)
def test_commands_in_html_comments_are_ignored(body: str) -> None:
    assert parse_commands(body) == []


def test_text_after_a_closed_comment_counts() -> None:
    assert [r.verb for r in parse_commands("<!-- note --> /agent fix")] == ["fix"]
    assert [r.verb for r in parse_commands("<!--\nhidden\n--> /agent status")] == ["status"]
    assert [r.verb for r in parse_commands("<!-->/agent fix")] == ["fix"]


def test_html_comment_markers_inside_a_fence_are_code() -> None:
    assert [r.verb for r in parse_commands("```html\n<!-- unclosed\n```\n/agent fix")] == ["fix"]


def test_invisible_characters_are_removed_before_matching() -> None:
    assert command("/age\u200bnt f\u200dix now").verb == "fix"
    assert command("\u202e/agent fix").verb == "fix"


# ---- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "agents"),
    [
        ("/agent fix --agents claude", ("claude",)),
        ("/agent fix --agents=claude,codex", ("claude", "codex")),
        ("/agent fix --agents claude, codex", ("claude", "codex")),
        ("/agent fix --agents claude ,codex", ("claude", "codex")),
        ("/agent fix --agents Claude,CODEX,claude", ("claude", "codex")),
        ("/agent fix --AGENTS house-fixer", ("house-fixer",)),
        ("/agent fix \u2014agents codex", ("codex",)),
    ],
)
def test_agents_option(line: str, agents: tuple[str, ...]) -> None:
    assert command(line).agents == agents


@pytest.mark.parametrize(("line", "attempts"), [("/agent fix --attempts 1", 1), ("/agent fix --attempts=10", 10)])
def test_attempts_option(line: str, attempts: int) -> None:
    assert command(line).attempts == attempts


def test_options_may_follow_the_instructions() -> None:
    cmd = command("/agent fix the flaky test --attempts 3")
    assert (cmd.attempts, cmd.instructions) == (3, "the flaky test")


def test_double_dash_ends_options() -> None:
    cmd = command("/agent fix --attempts 2 -- make --verbose print less")
    assert (cmd.attempts, cmd.instructions) == (2, "make --verbose print less")


def test_a_trailing_colon_after_the_task_is_allowed() -> None:
    cmd = command("/agent research: why is startup slow?")
    assert (cmd.verb, cmd.instructions) == ("research", "why is startup slow?")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("/agent fix --attempts 0", "from 1 to 10"),
        ("/agent fix --attempts 11", "from 1 to 10"),
        ("/agent fix --attempts two", "from 1 to 10"),
        ("/agent fix --attempts 2.5", "from 1 to 10"),
        ("/agent fix --attempts -1", "from 1 to 10"),
        ("/agent fix --attempts ٣", "from 1 to 10"),
        ("/agent fix --attempts", "needs a value"),
        ("/agent fix --agents", "needs a value"),
        ("/agent fix --agents=", "comma-separated"),
        ("/agent fix --agents ,", "comma-separated"),
        ("/agent fix --agents cla/ude", "comma-separated"),
        ("/agent fix --agents claude --agents codex", "given twice"),
        ("/agent fix --model opus", "`--model` is not an option"),
        ("/agent fix use --verbose", "`--verbose` is not an option"),
        ("/agent status --agents claude", "takes no options"),
        ("/agent cancel --attempts 2", "takes no options"),
    ],
)
def test_option_errors(line: str, fragment: str) -> None:
    err = error(line)
    assert fragment in err.message
    assert err.line == 1
    assert err.source == line


# ---- verbs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", sorted(RESERVED_VERBS - {"priority"}))
def test_every_reserved_verb_parses_bare(verb: str) -> None:
    cmd = command(f"/agent {verb.upper()}")
    assert cmd.verb == verb
    assert not cmd.is_task


def test_cancel_forms() -> None:
    assert command("/agent cancel").run is None
    assert command("/agent cancel all").all_runs
    assert command("/agent cancel ALL").all_runs
    assert command("/agent cancel 42").run == "42"
    assert command("/agent cancel #42").run == "42"
    assert command("/agent cancel r-7f3a").run == "r-7f3a"
    assert "run id" in error("/agent cancel the research run").message


def test_retry_forms() -> None:
    assert command("/agent retry").run is None
    assert command("/agent retry 17").run == "17"
    assert "run id" in error("/agent retry all").message
    assert "run id" in error("/agent retry 1 2").message


@pytest.mark.parametrize("level", ["urgent", "high", "normal", "low", "HIGH"])
def test_priority_levels(level: str) -> None:
    assert command(f"/agent priority {level}").priority == level.lower()


@pytest.mark.parametrize("line", ["/agent priority", "/agent priority critical", "/agent priority high now"])
def test_priority_needs_one_level(line: str) -> None:
    assert "urgent" in error(line).message


@pytest.mark.parametrize("verb", ["status", "queue", "bump", "skip", "unqueue", "requeue", "hold", "unhold", "rebase"])
def test_argument_free_verbs_reject_arguments(verb: str) -> None:
    err = error(f"/agent {verb} please")
    assert "takes no arguments" in err.message
    assert err.verb == verb


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("/agent", "needs a task or a command"),
        ("/agent   ", "needs a task or a command"),
        ("/agent 123", "not a task or command name"),
        ("/agent fix!", "not a task or command name"),
        ("/agent ñandú", "not a task or command name"),
        ("/agent " + "x" * 45, "at most 44"),
        ("/agent --agents claude fix", "first"),
    ],
)
def test_unknown_verbs(line: str, fragment: str) -> None:
    assert fragment in error(line).message


def test_any_identifier_is_a_task_to_be_checked_against_the_config_later() -> None:
    cmd = command("/agent write-docs for the CLI")
    assert (cmd.verb, cmd.is_task, cmd.instructions) == ("write-docs", True, "for the CLI")


def test_errors_do_not_stop_later_commands() -> None:
    results = parse_commands("/agent fix --attempts 99\n/agent status")
    assert isinstance(results[0], CommandError)
    assert isinstance(results[1], Command)


def test_a_comment_yields_at_most_a_bounded_number_of_commands() -> None:
    results = parse_commands("\n".join(["/agent fix"] * (MAX_COMMANDS_PER_BODY + 5)))
    assert len(results) == MAX_COMMANDS_PER_BODY + 1
    assert all(isinstance(r, Command) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, CommandError)
    assert "first 10" in last.message


# ---- edited comments -----------------------------------------------------------------------------------------------


def test_new_commands_finds_an_added_line() -> None:
    old = "Some context.\n/agent research"
    new = "Some context, edited.\n/agent research\n/agent fix --agents codex"
    assert [(r.verb, r.line) for r in new_commands(old, new)] == [("fix", 3)]


def test_new_commands_ignores_unchanged_and_moved_commands() -> None:
    old = "/agent fix\ntext\n/agent status"
    assert new_commands(old, old) == []
    assert new_commands(old, "/agent status\n/agent  FIX\nmore text") == []


def test_new_commands_counts_repeats() -> None:
    assert [r.verb for r in new_commands("/agent fix", "/agent fix\n/agent fix")] == ["fix"]


def test_new_commands_sees_a_changed_command_as_new() -> None:
    result = new_commands("/agent fix --attempts 1", "/agent fix --attempts 2")
    assert [(r.verb, getattr(r, "attempts", None)) for r in result] == [("fix", 2)]


def test_a_command_revealed_by_an_edit_is_new() -> None:
    old = "```\n/agent fix\n```"
    new = "/agent fix"
    assert [r.verb for r in new_commands(old, new)] == ["fix"]


def test_an_unchanged_error_is_not_reported_again_but_a_fixed_command_is_new() -> None:
    old = "/agent fix --attempts 0"
    assert new_commands(old, old + "\nthanks") == []
    assert [type(r) for r in new_commands(old, "/agent fix --attempts 1")] == [Command]


def test_new_commands_from_an_empty_body() -> None:
    assert new_commands(None, "/agent status") == parse_commands("/agent status")


# ---- help ----------------------------------------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    # Split on pipes that are not escaped, as GitHub's table parser does.
    cells, current, escaped = [], "", False
    for char in row.strip().strip("|"):
        if char == "|" and not escaped:
            cells.append(current.strip())
            current = ""
        else:
            current += char
        escaped = char == "\\"
    cells.append(current.strip())
    return cells


def test_help_table_lists_every_verb_in_a_well_formed_table() -> None:
    table = help_table()
    rows = table.splitlines()
    assert rows[1] == "| --- | --- |"
    assert all(len(_cells(row)) == 2 for row in rows)
    for verb in RESERVED_VERBS:
        assert f"`/agent {verb}" in table
    assert "--agents" in table
    assert "--attempts" in table


def test_help_table_adds_the_repository_tasks() -> None:
    table = help_table({"docs": "Write docs | with a pipe"})
    last = table.splitlines()[-1]
    assert _cells(last) == ["`/agent docs`", "Write docs \\| with a pipe"]


def test_the_help_table_itself_contains_no_commands() -> None:
    assert parse_commands(help_table({"fix": "Fix it"})) == []


def test_only_markdown_line_endings_start_a_line() -> None:
    assert parse_commands("text\u2028/agent fix\x85/agent status") == []
