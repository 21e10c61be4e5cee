"""What a Kickoff pull request says: its title, its body, its `agent-run` check, the research comment. Pure.

Everything an agent wrote (summary, transcript, report) is untrusted: cleaned of hidden content, redacted of anything
token-shaped or registered as a secret (`bot.logs.redact`), bounded, and the transcript fenced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot import messages
from bot.config import RepoConfig
from bot.github import CheckRunAction
from bot.logs import redact
from bot.runspec import RunResult
from bot.store.models import Run
from bot.untrusted import clean_untrusted

TITLE_CHARS: Final = 256
SUMMARY_CHARS: Final = 6000
TRANSCRIPT_CHARS: Final = 8000
EXCERPT_CHARS: Final = 3000
FILES_SHOWN: Final = 30
CHECK_SUMMARY_CHARS: Final = 60_000
REPORT_TASK_OUTPUT: Final = "report"
_BACKTICKS: Final = re.compile(r"`+")

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
    longest = max((len(m) for m in _BACKTICKS.findall(tail)), default=0)
    return messages.PR_TRANSCRIPT.format(fence="`" * max(3, longest + 1), tail=tail)


@dataclass(frozen=True, slots=True)
class BodyParts:
    """What a pull request body is made of, besides the run and its result."""

    sender: str
    output: str  # the task's output: pr | report
    siblings: Sequence[int] = ()
    close_siblings: bool = True
    followup_of: tuple[int, str] | None = None  # (pull request, its branch) for a follow-up into a person's PR
    report_path: str | None = None


def body(run: Run, result: RunResult, parts: BodyParts) -> str:
    """The pull request's body: summary, issue link, facts, siblings, transcript (collapsed), marker."""
    summary = safe(result.summary, SUMMARY_CHARS) or messages.PR_NO_SUMMARY
    if parts.followup_of is not None:
        number, branch = parts.followup_of
        link = messages.PR_FOLLOWUP_OF.format(number=number, branch=one_line(branch, 200).replace("`", "'"))
    elif parts.output == REPORT_TASK_OUTPUT:
        link = messages.PR_REFS.format(issue=run.issue_number)
    else:
        link = messages.PR_CLOSES.format(issue=run.issue_number)
    note = incomplete_note(result)
    sections = [note, summary, link] if note else [summary, link]
    if parts.report_path:
        sections.append(messages.PR_REPORT_NOTE.format(path=parts.report_path))
    sections.append(facts(run, result))
    if parts.siblings:
        links = ", ".join(f"#{n}" for n in sorted(parts.siblings))
        tail = messages.PR_SIBLINGS_CLOSE if parts.close_siblings else messages.PR_SIBLINGS_KEEP
        sections.append(messages.PR_SIBLINGS.format(links=links) + tail)
    details = transcript(result)
    if details:
        sections.append(details)
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
