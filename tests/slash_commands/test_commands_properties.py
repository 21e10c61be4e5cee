"""Property-based checks: the parser is total over arbitrary text and stable under edits that add nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slash_commands import Command, CommandError, new_commands, parse_commands

# Pieces that steer generated text into the parser's interesting states (fences, quotes, comments, options).
FRAGMENTS = st.sampled_from(
    [
        "/agent ",
        "/AGENT",
        "/agentx",
        "fix",
        "status",
        "cancel",
        "retry",
        "priority",
        "all",
        "#12",
        "high",
        "--agents",
        "--agents=",
        "--attempts",
        "--attempts=",
        "--",
        "\u2014agents",
        "claude,",
        ",codex",
        "3",
        "0",
        "11",
        "```",
        "~~~",
        "````",
        "> ",
        "<!--",
        "-->",
        "--!>",
        "<!-->",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        ":",
        "\u200b",
        "\u202e",
        "\ufeff",
        "\x00",
    ]
)
COMMANDISH = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join)
BODIES = st.one_of(st.text(max_size=400), COMMANDISH)


@settings(max_examples=1000, deadline=None)
@given(BODIES)
def test_parse_commands_never_raises(body: str) -> None:
    results = parse_commands(body)
    line_count = body.count("\n") + body.count("\r") + 1
    for result in results:
        assert isinstance(result, Command | CommandError)
        assert 1 <= result.line <= line_count
        if isinstance(result, CommandError):
            assert result.message
        elif result.attempts is not None:
            assert 1 <= result.attempts <= 10


@settings(max_examples=1000, deadline=None)
@given(BODIES, BODIES)
def test_new_commands_never_raises_and_an_unchanged_body_adds_nothing(old: str, new: str) -> None:
    assert new_commands(new, new) == []
    assert new_commands("", new) == parse_commands(new)
    assert len(new_commands(old, new)) <= len(parse_commands(new))
