"""The `/agent …` slash-command parser: pure, total (it never raises) and strict about options.

A command is a line of a comment that starts with `/agent` (after optional whitespace) and is visible when GitHub
renders the comment: lines inside a ``` or ~~~ fence, in a `>` quote or in an HTML comment are not commands. Each
such line yields either a `Command` or a `CommandError` whose message can be posted back to the user as is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from bot.untrusted import remove_invisible

# User-facing text (kept together so it can move to bot/messages.py).

MSG_MISSING_VERB: Final = "`/agent` needs a task or a command, e.g. `/agent fix`. Try `/agent help`."
MSG_OPTION_FIRST: Final = "Put the task or command first, then options: `/agent <task> [--agents a,b] …`."
MSG_BAD_VERB: Final = (
    "`{word}` is not a task or command name (names use lowercase letters, digits, `-` and `_`, "
    "start with a letter and have at most {max_len} characters). Try `/agent help`."
)
MSG_UNKNOWN_OPTION: Final = (
    "`--{name}` is not an option. Options are {options}; put `--` before instructions that contain `--`."
)
MSG_OPTION_NOT_ALLOWED: Final = "`/agent {verb}` does not take `--{name}`."
MSG_OPTION_NOT_ALLOWED_NONE: Final = "`/agent {verb}` takes no options, so `--{name}` is not allowed."
MSG_OPTION_TWICE: Final = "`--{name}` is given twice."
MSG_OPTION_NEEDS_VALUE: Final = "`--{name}` needs a value, e.g. {example}."
MSG_BAD_AGENTS: Final = (
    "`--agents` needs a comma-separated list of agent names, e.g. `--agents claude,codex`; `{value}` is not one."
)
MSG_BAD_ATTEMPTS: Final = "`--attempts` needs a whole number from 1 to {max_attempts}, not `{value}`."
MSG_NO_ARGUMENTS: Final = "`/agent {verb}` takes no arguments (got `{args}`)."
MSG_CANCEL_ARGUMENT: Final = "`/agent cancel` takes nothing, a run id, or `all` (got `{args}`)."
MSG_RETRY_ARGUMENT: Final = "`/agent retry` takes nothing or a run id (got `{args}`)."
MSG_PRIORITY_ARGUMENT: Final = "`/agent priority` needs one of {levels} (got `{args}`)."
MSG_TOO_MANY: Final = "Only the first {limit} `/agent` commands of a comment are read; the rest were ignored."

OPTION_EXAMPLES: Final[Mapping[str, str]] = {"agents": "`--agents claude,codex`", "attempts": "`--attempts 2`"}

HELP_HEADER: Final = "| Command | What it does |\n| --- | --- |"
HELP_ROWS: Final[tuple[tuple[str, str], ...]] = (
    (
        "/agent <task> [--agents a,b] [--attempts N] [instructions…]",
        "Start a task (`research`, `fix`, `implement`, or one this repository defines): one run, and one pull "
        "request or report, per agent and attempt. The rest of the line is extra instructions.",
    ),
    ("/agent cancel [run|all]", "Cancel the runs started here by the latest trigger, one run by its id, or all."),
    ("/agent retry [run]", "Retry the failed runs of the latest trigger here, or one run by its id."),
    ("/agent status", "Show the runs of this issue or pull request."),
    ("/agent queue", "Show the review queue and where this pull request is in it."),
    ("/agent bump", "Move this pull request to the front of the review queue."),
    ("/agent priority <urgent|high|normal|low>", "Set this pull request's priority in the review queue."),
    ("/agent skip", "Let the next pull request in the queue go ahead of this one."),
    (
        "/agent prefer",
        "Make this attempt the leader of its fan-out: reviewed first, its sibling pull requests wait as "
        "alternatives.",
    ),
    ("/agent unqueue", "Take this pull request out of the review queue."),
    ("/agent requeue", "Put this pull request back into the review queue."),
    ("/agent hold", "Keep this pull request in the queue, but never make it the head until `/agent unhold`."),
    ("/agent unhold", "Release a hold."),
    ("/agent rebase", "Bring this pull request up to date with its base branch now."),
    ("/agent help", "Show this table."),
)
HELP_TASK_ROW: Final = "/agent {task}"

# Grammar.

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)

RESERVED_VERBS: Final = frozenset(
    {
        "cancel",
        "retry",
        "status",
        "queue",
        "bump",
        "priority",
        "skip",
        "prefer",
        "unqueue",
        "requeue",
        "hold",
        "unhold",
        "rebase",
        "help",
    }
)
NAME_MAX_LEN: Final = 44  # `agent:` + name must fit GitHub's 50-character label limit.
NAME_PATTERN: Final = rf"^[a-z][a-z0-9_-]{{0,{NAME_MAX_LEN - 1}}}$"
"""Task and agent names: label-, branch- and path-safe identifiers."""
NAME_RE: Final = re.compile(NAME_PATTERN)

MAX_ATTEMPTS: Final = 10
MAX_COMMANDS_PER_BODY: Final = 10
OPTION_NAMES: Final = ("agents", "attempts")
TASK_OPTIONS: Final = frozenset(OPTION_NAMES)
VERB_OPTIONS: Final[Mapping[str, frozenset[str]]] = {verb: frozenset() for verb in RESERVED_VERBS}
"""The allow-list of options per reserved verb; task verbs take `TASK_OPTIONS`."""

_COMMAND_LINE: Final = re.compile(r"\s*/agent(?=\s|$)(?P<rest>.*)\Z", re.IGNORECASE | re.DOTALL)
_VERB_WORD: Final = re.compile(r"(?P<word>[A-Za-z][A-Za-z0-9_-]*):?")
_OPTION_TOKEN: Final = re.compile(r"--(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?:(?P<eq>=)(?P<value>.*))?\Z", re.DOTALL)
_DASHES: Final = ("\u2014", "\u2013")  # phones turn `--` into an em or en dash
_RUN_REF: Final = re.compile(r"#?(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,63})")
_QUOTE: Final = re.compile(r"\s*>")
_FENCE_OPEN: Final = re.compile(r"\s*(?P<fence>`{3,}|~{3,})(?P<info>.*)\Z", re.DOTALL)
_COMMENT_CLOSE: Final = re.compile(r"--!?>")
_NEWLINES: Final = re.compile("\r\n?")  # CommonMark's line endings; U+2028 and friends do not start a line


@dataclass(frozen=True, slots=True)
class Command:
    """One valid `/agent` line. Task commands carry options and instructions; control verbs their argument."""

    verb: str
    line: int
    source: str
    agents: tuple[str, ...] | None = None
    attempts: int | None = None
    instructions: str = ""
    run: str | None = None
    all_runs: bool = False
    priority: Priority | None = None

    @property
    def is_task(self) -> bool:
        """Whether the verb names a task (checked against the repo config later) rather than a control verb."""
        return self.verb not in RESERVED_VERBS

    @property
    def key(self) -> str:
        return _line_key(self.source)


@dataclass(frozen=True, slots=True)
class CommandError:
    """An `/agent` line that cannot be run; `message` says why in words meant for the commenter."""

    line: int
    source: str
    message: str
    verb: str | None = None

    @property
    def key(self) -> str:
        return _line_key(self.source)


ParsedCommand = Command | CommandError


def parse_commands(body: str | None) -> list[ParsedCommand]:
    """Every visible `/agent` line of a comment or issue body, in order. Never raises."""
    results: list[ParsedCommand] = []
    for line_number, text in _visible_lines(body or ""):
        if not _COMMAND_LINE.match(text):
            continue
        if len(results) == MAX_COMMANDS_PER_BODY:
            results.append(CommandError(line_number, text.strip(), MSG_TOO_MANY.format(limit=MAX_COMMANDS_PER_BODY)))
            break
        results.append(parse_command_line(text, line_number))
    return results


def new_commands(old_body: str | None, new_body: str | None) -> list[ParsedCommand]:
    """The commands (and errors) of `new_body` that `old_body` did not already have, for `issue_comment.edited`.

    Commands are compared by their text with whitespace and case folded, counting repeats, so moving lines or
    editing other text starts nothing, while adding a line, or changing one, yields it.
    """
    seen = Counter(item.key for item in parse_commands(old_body))
    fresh: list[ParsedCommand] = []
    for item in parse_commands(new_body):
        if seen[item.key] > 0:
            seen[item.key] -= 1
        else:
            fresh.append(item)
    return fresh


def help_table(tasks: Mapping[str, str] | None = None) -> str:
    """The Markdown table of commands; `tasks` (name → description) adds one row per task of the repository."""
    rows = [HELP_HEADER]
    for usage, description in HELP_ROWS:
        rows.append(f"| {_table_code(usage)} | {_table_text(description)} |")
    for name, description in sorted((tasks or {}).items()):
        rows.append(f"| {_table_code(HELP_TASK_ROW.format(task=name))} | {_table_text(description)} |")
    return "\n".join(rows)


def parse_command_line(text: str, line_number: int = 1) -> ParsedCommand:
    """Parse one line already known to start with `/agent`."""
    source = text.strip()

    def error(message: str, verb: str | None = None) -> CommandError:
        return CommandError(line_number, source, message, verb)

    match = _COMMAND_LINE.match(text)
    if match is None:
        return error(MSG_MISSING_VERB)
    tokens = [_undash(token) for token in match.group("rest").split()]
    if not tokens:
        return error(MSG_MISSING_VERB)
    if tokens[0].startswith("--"):
        return error(MSG_OPTION_FIRST)
    verb_match = _VERB_WORD.fullmatch(tokens[0])
    verb = verb_match.group("word").lower() if verb_match else ""
    if not NAME_RE.match(verb):
        return error(MSG_BAD_VERB.format(word=_shorten(tokens[0]), max_len=NAME_MAX_LEN))

    allowed = VERB_OPTIONS.get(verb, TASK_OPTIONS)
    options: dict[str, str] = {}
    words: list[str] = []
    index, end_of_options = 1, False
    while index < len(tokens):
        piece = tokens[index]
        index += 1
        option = None if end_of_options else _OPTION_TOKEN.match(piece)
        if piece == "--" and not end_of_options:
            end_of_options = True
            continue
        if option is None:
            words.append(piece)
            continue
        name = option.group("name").lower()
        if name not in OPTION_NAMES:
            return error(MSG_UNKNOWN_OPTION.format(name=name, options=_option_list()), verb)
        if name not in allowed:
            template = MSG_OPTION_NOT_ALLOWED if allowed else MSG_OPTION_NOT_ALLOWED_NONE
            return error(template.format(verb=verb, name=name), verb)
        if name in options:
            return error(MSG_OPTION_TWICE.format(name=name), verb)
        value = option.group("value")
        if option.group("eq") is None:
            if index >= len(tokens) or tokens[index].startswith("--"):
                return error(MSG_OPTION_NEEDS_VALUE.format(name=name, example=OPTION_EXAMPLES[name]), verb)
            value = tokens[index]
            index += 1
        if name == "agents":
            # `--agents claude, codex` is what people type; join the pieces of the list.
            while (
                index < len(tokens)
                and (value.endswith(",") or tokens[index].startswith(","))
                and not tokens[index].startswith("--")
            ):
                value += tokens[index]
                index += 1
        options[name] = value

    agents: tuple[str, ...] | None = None
    if "agents" in options:
        agents = _parse_agents(options["agents"])
        if agents is None:
            return error(MSG_BAD_AGENTS.format(value=_shorten(options["agents"])), verb)
    attempts: int | None = None
    if "attempts" in options:
        attempts = _parse_attempts(options["attempts"])
        if attempts is None:
            return error(MSG_BAD_ATTEMPTS.format(max_attempts=MAX_ATTEMPTS, value=_shorten(options["attempts"])), verb)

    if verb not in RESERVED_VERBS:
        return Command(verb, line_number, source, agents=agents, attempts=attempts, instructions=" ".join(words))
    return _control_command(verb, words, line_number, source)


def _control_command(verb: str, words: list[str], line_number: int, source: str) -> ParsedCommand:
    args = _shorten(" ".join(words))
    message: str
    if verb == "cancel":
        if not words:
            return Command(verb, line_number, source)
        if len(words) == 1 and words[0].lower() == "all":
            return Command(verb, line_number, source, all_runs=True)
        run = _run_ref(words)
        if run:
            return Command(verb, line_number, source, run=run)
        message = MSG_CANCEL_ARGUMENT.format(args=args)
    elif verb == "retry":
        if not words:
            return Command(verb, line_number, source)
        run = _run_ref(words)
        if run:
            return Command(verb, line_number, source, run=run)
        message = MSG_RETRY_ARGUMENT.format(args=args)
    elif verb == "priority":
        level = words[0].lower() if len(words) == 1 else ""
        for priority in PRIORITIES:
            if level == priority:
                return Command(verb, line_number, source, priority=priority)
        levels = ", ".join(f"`{p}`" for p in PRIORITIES)
        message = MSG_PRIORITY_ARGUMENT.format(levels=levels, args=args)
    elif words:
        message = MSG_NO_ARGUMENTS.format(verb=verb, args=args)
    else:
        return Command(verb, line_number, source)
    return CommandError(line_number, source, message, verb)


def _visible_lines(body: str) -> Iterator[tuple[int, str]]:
    """Lines a reader sees outside code fences and quotes, with HTML comments and invisible characters removed."""
    fence: tuple[str, int] | None = None
    in_comment = False
    for line_number, line in enumerate(_NEWLINES.sub("\n", body).split("\n"), start=1):
        if fence is not None:
            if _closes_fence(line, fence):
                fence = None
            continue
        text = line
        if in_comment:
            close = _COMMENT_CLOSE.search(text)
            if close is None:
                continue
            text, in_comment = text[close.end() :], False
        text, in_comment = _strip_line_comments(text)
        text = remove_invisible(text)
        if _QUOTE.match(text):
            continue
        opener = _FENCE_OPEN.match(text)
        if opener and not (opener.group("fence")[0] == "`" and "`" in opener.group("info")):
            fence = (opener.group("fence")[0], len(opener.group("fence")))
            continue
        yield line_number, text


def _closes_fence(line: str, fence: tuple[str, int]) -> bool:
    stripped = line.strip()
    char, length = fence
    return len(stripped) >= length and stripped == char * len(stripped)


def _strip_line_comments(text: str) -> tuple[str, bool]:
    """Remove the HTML comments of one line; report whether a comment stays open past its end."""
    kept: list[str] = []
    position = 0
    while True:
        start = text.find("<!--", position)
        if start < 0:
            kept.append(text[position:])
            return "".join(kept), False
        kept.append(text[position:start])
        after = start + 4
        if text.startswith(">", after):
            position = after + 1
        elif text.startswith("->", after):
            position = after + 2
        else:
            close = _COMMENT_CLOSE.search(text, after)
            if close is None:
                return "".join(kept), True
            position = close.end()


def _undash(token: str) -> str:
    for dash in _DASHES:
        if token.startswith(dash):
            candidate = "--" + token[len(dash) :]
            option = _OPTION_TOKEN.match(candidate)
            if option and option.group("name").lower() in OPTION_NAMES:
                return candidate
    return token


def _parse_agents(value: str) -> tuple[str, ...] | None:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not names or not all(NAME_RE.match(name) for name in names):
        return None
    return tuple(dict.fromkeys(names))


def _parse_attempts(value: str) -> int | None:
    if not value.isascii() or not value.isdigit() or len(value) > 3:
        return None
    attempts = int(value)
    return attempts if 1 <= attempts <= MAX_ATTEMPTS else None


def _run_ref(words: list[str]) -> str | None:
    if len(words) != 1:
        return None
    match = _RUN_REF.fullmatch(words[0])
    if match is None or match.group("id").lower() == "all":
        return None
    return match.group("id")


def _option_list() -> str:
    return ", ".join(f"`--{name}`" for name in OPTION_NAMES)


def _shorten(text: str, limit: int = 60) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_key(source: str) -> str:
    return " ".join(source.split()).casefold()


def _table_code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _table_text(text: str) -> str:
    return text.replace("|", "\\|")
