"""What a Kickoff pull request says: its title, its body, its `agent-run` check, the research comment. Pure.

Everything an agent wrote (summary, transcript, report, file names) is untrusted: cleaned of hidden content, redacted
of anything token-shaped or registered as a secret (`bot.logs.redact`), bounded; in a pull request body it is either
fenced (the full summary, the transcript) or made inert Markdown (`bot.untrusted.inert_markdown`: the brief's lines),
so the only HTML in a body is the `<details>` fold Kickoff writes.

A body opens with the reviewer brief (`brief`, at most `BRIEF_WORDS` words): what changed and why, how it was checked
(verify, CI once known), risk flags, size and, in a ranked fan-out, the attempt's standing. The rest (the summary in
full, the run's facts, siblings, the transcript) is folded under `<details>`. Every part is bounded, so a body stays
far below GitHub's 65,536 characters whatever the agent printed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from bot import messages
from bot.config import RepoConfig
from bot.github import CheckRunAction
from bot.logs import redact
from bot.runspec import RunResult
from bot.store.models import Run
from bot.untrusted import clean_untrusted, inert_markdown

TITLE_CHARS: Final = 256
SUMMARY_CHARS: Final = 6000
TRANSCRIPT_CHARS: Final = 8000
EXCERPT_CHARS: Final = 3000
FILES_SHOWN: Final = 30
CHECK_SUMMARY_CHARS: Final = 60_000
REPORT_TASK_OUTPUT: Final = "report"
SIBLINGS_SHOWN: Final = 20
_BACKTICKS: Final = re.compile(r"`+")

BRIEF_WORDS: Final = 150
"""The brief's bound in words (whitespace-separated, as `str.split` counts them); every part is capped below."""
BRIEF_SUMMARY_WORDS: Final = 32
BRIEF_TITLE_WORDS: Final = 12
BRIEF_REASON_WORDS: Final = 10
BRIEF_COMMAND_WORDS: Final = 6
BRIEF_NAME_WORDS: Final = 3  # a path or a check name
BRIEF_NAMES_SHOWN: Final = 2
LARGE_DIFF_LINES: Final = 500
LARGE_DIFF_FILES: Final = 25

# Risk flags, from the paths a run changed (`RunResult.files_changed`, `files_deleted`).
DEPENDENCY_FILES: Final = frozenset({
    "pyproject.toml", "setup.py", "setup.cfg", "pipfile", "pipfile.lock", "poetry.lock", "uv.lock", "pdm.lock",
    "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "go.mod", "go.sum", "cargo.toml", "cargo.lock", "gemfile", "gemfile.lock", "composer.json", "composer.lock",
    "pom.xml", "build.gradle", "build.gradle.kts", "gradle.lockfile", "mix.exs", "mix.lock", "flake.lock",
})
_REQUIREMENTS: Final = re.compile(r"requirements[\w.-]*\.(?:txt|in)$|constraints[\w.-]*\.txt$")
_MIGRATION_DIRS: Final = frozenset({"migrations", "migration", "migrate", "alembic"})
_CI_PATHS: Final = (".github/workflows/", ".github/actions/", ".circleci/", ".buildkite/")
_CI_FILES: Final = frozenset({".gitlab-ci.yml", "jenkinsfile", "azure-pipelines.yml", ".travis.yml",
                              "bitbucket-pipelines.yml", "action.yml", "action.yaml"})
_TEST_DIRS: Final = frozenset({"test", "tests", "__tests__", "spec", "specs", "testing"})
_TEST_FILE: Final = re.compile(
    r"^test_.*\.py$|_test\.(?:py|go|rb|exs?)$|\.(?:test|spec)\.[cm]?[jt]sx?$|Tests?\.(?:java|kt|cs)$"
)

Flag = Literal["dependencies", "migrations", "ci", "deleted-tests", "large-diff"]
FLAGS: Final[tuple[Flag, ...]] = ("dependencies", "migrations", "ci", "deleted-tests", "large-diff")
CiState = Literal["success", "failure", "pending", "none"]

# GitHub's limits on check run buttons (labels 20, descriptions 40, identifiers 20 characters; at most 3).
BUTTON_LIMITS: Final = (20, 40, 20)
MAX_BUTTONS: Final = 3


def safe(text: str, limit: int) -> str:
    """Agent text as it may appear on GitHub: cleaned, redacted, bounded."""
    return clean_untrusted(redact(text), limit).strip()


def one_line(text: str, limit: int) -> str:
    flat = " ".join(safe(text, limit * 2).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def duration(seconds: float) -> str:
    total = max(0, round(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def title(config: RepoConfig, run: Run, issue_title: str) -> str:
    """`pull_requests.title` filled in (the template was validated with the config)."""
    text = config.pull_requests.title.format(
        task=run.task, issue_title=one_line(issue_title, 120) or f"#{run.issue_number}", issue=run.issue_number,
        agent=run.agent,
    )
    return one_line(text, TITLE_CHARS) or f"{run.task} #{run.issue_number} [{run.agent}]"


def verify_text(result: RunResult) -> str:
    verify = result.verify
    if verify is None:
        return messages.PR_VERIFY_SKIPPED if result.incomplete else messages.PR_VERIFY_NONE
    command = one_line(verify.command, 80).replace("`", "'")
    if verify.passed:
        return messages.PR_VERIFY_PASSED.format(command=command)
    return messages.PR_VERIFY_FAILED.format(command=command, code=verify.exit_code)


def verify_failed(result: RunResult) -> bool:
    return result.verify is not None and not result.verify.passed


def words(text: str, limit: int) -> str:
    """At most `limit` whitespace-separated words, ending in `…` when cut."""
    found = text.split()
    return " ".join(found) if len(found) <= limit else " ".join(found[:limit]) + "…"


def code(text: str, limit_words: int = BRIEF_NAME_WORDS) -> str:
    """Untrusted text in a code span (inert: no markup, mention or link), one line, no backticks, bounded."""
    flat = one_line(text, 120).replace("`", "'")
    return f"`{words(flat, limit_words)}`"


def ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def is_dependency_file(path: str) -> bool:
    name = posixpath.basename(path).lower()
    return name in DEPENDENCY_FILES or _REQUIREMENTS.match(name) is not None


def is_migration(path: str) -> bool:
    return bool(_MIGRATION_DIRS & {part.lower() for part in path.split("/")[:-1]})


def is_ci_file(path: str) -> bool:
    lowered = path.lower()
    return lowered.startswith(_CI_PATHS) or lowered in _CI_FILES


def is_test(path: str) -> bool:
    parts = path.split("/")
    return bool(_TEST_DIRS & {part.lower() for part in parts[:-1]}) or _TEST_FILE.search(parts[-1]) is not None


def is_large(result: RunResult) -> bool:
    lines = (result.lines_added or 0) + (result.lines_removed or 0)
    return lines > LARGE_DIFF_LINES or len(result.files_changed) > LARGE_DIFF_FILES


def risk_flags(result: RunResult) -> dict[Flag, tuple[str, ...]]:
    """The run's risk flags, each with the paths that raised it (none for a large diff), in `FLAGS` order. Deleted
    tests are known only from a runner that reports `files_deleted`."""
    changed = result.files_changed
    found: dict[Flag, tuple[str, ...]] = {
        "dependencies": tuple(p for p in changed if is_dependency_file(p)),
        "migrations": tuple(p for p in changed if is_migration(p)),
        "ci": tuple(p for p in changed if is_ci_file(p)),
        "deleted-tests": tuple(p for p in result.files_deleted if is_test(p)),
    }
    flags = {flag: paths for flag, paths in found.items() if paths}
    if is_large(result):
        flags["large-diff"] = ()
    return flags


@dataclass(frozen=True, slots=True)
class CI:
    """CI on the pull request's head as the queue's stored facts last saw it (`bot.prs.brief.ci_of_head`)."""

    state: CiState = "none"
    failing: tuple[str, ...] = ()
    checks: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    """The pull request's place in its ranked fan-out (`pull_requests.rank`, `triggers.ranking`)."""

    attempt: int
    attempts: int
    rank: int
    reason: str = ""
    judged: bool = False


def _names(names: Sequence[str]) -> str:
    shown = [code(name) for name in names[:BRIEF_NAMES_SHOWN]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more > 0 else "")


def _verify_brief(result: RunResult) -> str:
    verify = result.verify
    if verify is None:
        return messages.BRIEF_VERIFY_NONE
    command = code(verify.command, BRIEF_COMMAND_WORDS)[1:-1]
    if verify.passed:
        return messages.BRIEF_VERIFY_PASSED.format(command=command)
    return messages.BRIEF_VERIFY_FAILED.format(command=command, code=verify.exit_code)


def _ci_brief(ci: CI) -> str:
    """CI's conclusion, without counts: a further check passing changes nothing a reviewer needs, nor the body."""
    if ci.state == "failure" and ci.failing:
        return messages.BRIEF_CI_FAILED.format(names=_names(ci.failing))
    return messages.BRIEF_CI[ci.state]


def _risk_brief(result: RunResult) -> str:
    flags = risk_flags(result)
    if not flags:
        return messages.BRIEF_NO_RISK
    shown = []
    for flag, paths in flags.items():
        label = messages.BRIEF_FLAGS[flag]
        shown.append(f"{label} ({_names(paths)})" if paths else label)
    return "⚠️ " + ", ".join(shown)


def _link(run: Run, parts: BodyParts) -> str:
    if parts.followup_of is not None:
        number, branch = parts.followup_of
        return messages.PR_FOLLOWUP_OF.format(number=number, branch=code(branch, 2)[1:-1])
    if parts.output == REPORT_TASK_OUTPUT:
        return messages.PR_REFS.format(issue=run.issue_number)
    return messages.PR_CLOSES.format(issue=run.issue_number)


def brief(run: Run, result: RunResult, parts: BodyParts) -> str:
    """The reviewer brief: what changed and why, how it was checked, risk flags, size, the fan-out standing. At most
    `BRIEF_WORDS` words; agent and issue text in it is inert (`inert_markdown`, code spans)."""
    summary = words(inert_markdown(one_line(result.summary, 400)), BRIEF_SUMMARY_WORDS) or messages.BRIEF_NO_SUMMARY
    lines = [messages.BRIEF_WHAT.format(summary=summary)]
    title_text = words(inert_markdown(one_line(parts.issue_title, 200)), BRIEF_TITLE_WORDS)
    link = _link(run, parts)
    lines.append(messages.BRIEF_WHY.format(link=link, title=title_text) if title_text
                 else messages.BRIEF_WHY_UNTITLED.format(link=link))
    lines.append(messages.BRIEF_CHECKED.format(verify=_verify_brief(result), ci=_ci_brief(parts.ci)))
    lines.append(messages.BRIEF_RISK.format(flags=_risk_brief(result)))
    count = len(result.files_changed)
    size_lines = "" if result.lines_added is None or result.lines_removed is None else messages.BRIEF_LINES.format(
        added=f"{result.lines_added:,}", removed=f"{result.lines_removed:,}")
    lines.append(messages.BRIEF_SIZE.format(files=count, noun="file" if count == 1 else "files", lines=size_lines))
    standing = parts.standing
    if standing is not None:
        reason = words(inert_markdown(one_line(standing.reason, 200)), BRIEF_REASON_WORDS)
        lines.append(messages.BRIEF_STANDING.format(
            attempt=standing.attempt, attempts=standing.attempts, issue=run.issue_number,
            rank=ordinal(standing.rank), by=messages.BRIEF_BY_JUDGE if standing.judged else "",
            reason=f" — {reason}" if reason else "",
        ))
    return "\n".join(lines)


def fenced(template: str, text: str, **values: str) -> str:
    """Agent text in a fence longer than any backtick run inside it."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    return template.format(fence="`" * max(3, longest + 1), **values)


def incomplete_note(result: RunResult) -> str | None:
    """The incomplete marker with its reason, for the top of the body of a run cut short (None for any other)."""
    if not result.incomplete:
        return None
    reason = one_line(result.reason or "the agent was stopped before it finished", messages.PR_INCOMPLETE_REASON_CHARS)
    return messages.PR_INCOMPLETE.format(reason=reason.rstrip("."))


def opens_as_draft(config: RepoConfig, result: RunResult) -> bool:
    """A pull request opens as a draft when the repository asks, verify failed, or the run was cut short."""
    return config.pull_requests.draft or verify_failed(result) or result.incomplete


def facts(run: Run, result: RunResult) -> str:
    """The run's facts as a small table: agent, model, duration, tokens, cost (where known), verify."""
    usage = result.usage
    rows: list[tuple[str, str]] = [("agent", f"`{one_line(run.agent, 64)}` (run {run.id}, attempt {run.attempt})")]
    if usage.model:
        rows.append(("model", f"`{one_line(usage.model, 80).replace('`', '')}`"))
    rows.append(("duration", duration(result.duration_seconds)))
    if usage.input_tokens is not None or usage.output_tokens is not None:
        rows.append(("tokens", f"{usage.input_tokens or 0:,} in · {usage.output_tokens or 0:,} out"))
    if usage.cost_usd is not None:
        rows.append(("cost", f"${usage.cost_usd:,.2f}"))
    rows.append(("verify", verify_text(result)))
    lines = [messages.PR_FACTS_HEAD]
    lines += [messages.PR_FACT_ROW.format(name=name, value=value.replace("|", "\\|")) for name, value in rows]
    return "\n".join(lines)


def transcript(result: RunResult) -> str:
    tail = safe(result.transcript_tail, TRANSCRIPT_CHARS * 4)[-TRANSCRIPT_CHARS:]
    if not tail:
        return ""
    return fenced(messages.PR_TRANSCRIPT, tail, tail=tail)


@dataclass(frozen=True, slots=True)
class BodyParts:
    """What a pull request body is made of, besides the run and its result."""

    sender: str
    output: str  # the task's output: pr | report
    siblings: Sequence[int] = ()
    close_siblings: bool = True
    followup_of: tuple[int, str] | None = None  # (pull request, its branch) for a follow-up into a person's PR
    report_path: str | None = None
    issue_title: str = ""
    ci: CI = CI()
    standing: Standing | None = None


def body(run: Run, result: RunResult, parts: BodyParts) -> str:
    """The pull request's body: the incomplete marker (a run cut short), the brief, then (folded) the summary, report
    note, facts, siblings and transcript; the footer and the marker."""
    note = incomplete_note(result)
    sections = [note, brief(run, result, parts)] if note else [brief(run, result, parts)]
    if parts.report_path:
        sections.append(messages.PR_REPORT_NOTE.format(path=code(parts.report_path, 1)[1:-1]))
    folded: list[str] = []
    summary = safe(result.summary, SUMMARY_CHARS)
    folded.append(fenced(messages.PR_SUMMARY, summary, summary=summary) if summary else messages.PR_NO_SUMMARY)
    folded.append(facts(run, result))
    if parts.siblings:
        numbers = sorted(parts.siblings)
        links = ", ".join(f"#{n}" for n in numbers[:SIBLINGS_SHOWN])
        if len(numbers) > SIBLINGS_SHOWN:
            links += f" and {len(numbers) - SIBLINGS_SHOWN} more"
        tail = messages.PR_SIBLINGS_CLOSE if parts.close_siblings else messages.PR_SIBLINGS_KEEP
        folded.append(messages.PR_SIBLINGS.format(links=links) + tail)
    details = transcript(result)
    if details:
        folded.append(details)
    sections.append(messages.PR_DETAILS.format(sections="\n\n".join(folded)))
    sections.append(messages.PR_FOOTER.format(run=run.id, sender=one_line(parts.sender, 60)))
    sections.append(messages.PR_MARKER.format(run=run.id))
    return "\n\n".join(sections)


def research_comment(run: Run, result: RunResult, number: int, path: str) -> str:
    excerpt = safe(result.report or result.summary, EXCERPT_CHARS)
    text = messages.RESEARCH_COMMENT.format(agent=one_line(run.agent, 64), run=run.id, number=number, path=path,
                                            excerpt=excerpt)
    return messages.with_marker(text, messages.PR_MARKER.format(run=run.id))


@dataclass(frozen=True, slots=True)
class CheckText:
    conclusion: str
    title: str
    summary: str
    actions: tuple[CheckRunAction, ...]


def check_actions() -> tuple[CheckRunAction, ...]:
    """Retry and Cancel, within GitHub's limits on buttons."""
    actions = tuple(CheckRunAction(*spec) for spec in (messages.AGENT_CHECK_RETRY, messages.AGENT_CHECK_CANCEL))
    for action in actions:
        sizes = (len(action.label), len(action.description), len(action.identifier))
        if any(size > limit for size, limit in zip(sizes, BUTTON_LIMITS, strict=True)):
            raise ValueError(f"check run button {action.identifier!r} exceeds GitHub's limits")
    if len(actions) > MAX_BUTTONS:
        raise ValueError("a check run has at most 3 buttons")
    return actions


def conclusion(result: RunResult) -> str:
    """`success`; `neutral` when verify failed or the run was cut short: the check reports the run, the repository's
    CI judges the code (and either already makes the pull request a draft), so a red `agent-run` would only
    duplicate CI."""
    return "neutral" if verify_failed(result) or result.incomplete else "success"


def agent_check(run: Run, result: RunResult) -> CheckText:
    outcome = "incomplete" if result.incomplete else "verify failed" if verify_failed(result) else "done"
    heading = messages.AGENT_CHECK_TITLE.format(agent=one_line(run.agent, 64), outcome=outcome,
                                                duration=duration(result.duration_seconds))
    summary = safe(result.summary, SUMMARY_CHARS) or messages.PR_NO_SUMMARY
    shown = [f"`{one_line(path, 200).replace('`', '')}`" for path in result.files_changed[:FILES_SHOWN]]
    more = len(result.files_changed) - len(shown)
    files = messages.AGENT_CHECK_FILES.format(
        count=len(result.files_changed), files=", ".join(shown) + (f" and {more} more" if more > 0 else "")
    )
    text = messages.AGENT_CHECK_SUMMARY.format(summary=summary, facts=facts(run, result), files=files)
    if (note := incomplete_note(result)) is not None:
        text = f"{note}\n\n{text}"
    text += "\n\n" + messages.AGENT_CHECK_BUTTONS
    return CheckText(conclusion(result), heading, text[:CHECK_SUMMARY_CHARS], check_actions())
