"""Keeping a pull request's reviewer brief current: when CI concludes on its head or its fan-out is ranked again.

The body is rendered again from the run, what it was first rendered from (`pull_requests.brief_context`), the open
siblings, CI on the head as the queue's stored facts say (`commit_facts`, kept from webhooks: no GitHub read) and the
ranking (`pull_requests.rank`, `triggers.ranking`). It is written (one `PATCH /pulls/N`) only when its digest differs
from the body Kickoff last wrote (`pull_requests.body_sha256`): a refresh that changes nothing costs no GitHub request.

Callers: the queue's CI events (`bot.handlers.queue`), the opener's sibling links (`bot.prs.opening`), and the
ranking's publish step (`refresh_fan_out`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select

from bot.config.model import Queue
from bot.github import GitHubAPI, GitHubError
from bot.messages import AGENT_CHECK_NAME
from bot.prs import texts
from bot.runspec import RunResult
from bot.services import Services
from bot.store.models import CommitFacts, PullRequest, Run, Trigger
from bot.store.pulls import OPEN, PullRequestStore

log = logging.getLogger(__name__)

FAILING: Final = frozenset({"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale"})
"""Check run conclusions that fail CI (as `bot.queue.reconcile.FAILING`, which this layer cannot import)."""
KICKOFF_CHECKS: Final = frozenset({AGENT_CHECK_NAME, Queue().check_name})
TITLE_KEPT: Final = 300


@dataclass(frozen=True, slots=True)
class BriefContext:
    """What a body is rendered from besides the run, the siblings, CI and the ranking; kept as JSON on the row."""

    issue_title: str
    sender: str
    output: str
    close_siblings: bool = True
    followup_of: tuple[int, str] | None = None
    report_path: str | None = None

    def to_json(self) -> str:
        return json.dumps({
            "issue_title": self.issue_title[:TITLE_KEPT], "sender": self.sender, "output": self.output,
            "close_siblings": self.close_siblings,
            "followup_of": list(self.followup_of) if self.followup_of is not None else None,
            "report_path": self.report_path,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> BriefContext | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            followup = data.get("followup_of")
            return cls(
                issue_title=str(data.get("issue_title") or ""), sender=str(data["sender"]), output=str(data["output"]),
                close_siblings=bool(data.get("close_siblings", True)),
                followup_of=(int(followup[0]), str(followup[1])) if followup else None,
                report_path=str(data["report_path"]) if data.get("report_path") else None,
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None

    @classmethod
    def of(cls, parts: texts.BodyParts) -> BriefContext:
        return cls(parts.issue_title, parts.sender, parts.output, parts.close_siblings, parts.followup_of,
                   parts.report_path)

    def parts(self, siblings: list[int], ci: texts.CI, standing: texts.Standing | None) -> texts.BodyParts:
        return texts.BodyParts(
            sender=self.sender, output=self.output, siblings=siblings, close_siblings=self.close_siblings,
            followup_of=self.followup_of, report_path=self.report_path, issue_title=self.issue_title, ci=ci,
            standing=standing,
        )


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def ci_from_facts(runs: Mapping[str, Any], statuses: Mapping[str, Any], *, own_app_id: int | None) -> texts.CI:
    """CI's verdict from a commit's stored check runs (`{id: [name, status, conclusion, app id]}`) and statuses
    (`{context: [state, id]}`), Kickoff's own checks aside: a failure wins over pending; nothing reported is `none`."""
    failing: list[str] = []
    pending = False
    seen = 0
    # The queue keeps only the latest run of each name and App (`bot.queue.facts.observe_check_run`).
    for _run_id, fact in sorted(runs.items(), key=lambda item: (len(item[0]), item[0])):
        if not isinstance(fact, list) or len(fact) < 4:
            continue
        name, status, conclusion, app_id = fact[:4]
        if name in KICKOFF_CHECKS or (own_app_id is not None and app_id == own_app_id):
            continue
        seen += 1
        if status != "completed":
            pending = True
        elif (conclusion or "") in FAILING:
            failing.append(str(name))
    for context, value in sorted(statuses.items()):
        state = value[0] if isinstance(value, list) and value else None
        seen += 1
        if state in ("failure", "error"):
            failing.append(str(context))
        elif state == "pending":
            pending = True
    if failing:
        return texts.CI("failure", tuple(dict.fromkeys(failing)), seen)
    if pending:
        return texts.CI("pending", (), seen)
    return texts.CI("success", (), seen) if seen else texts.CI()


async def ci_of_head(services: Services, repository: str, sha: str | None) -> texts.CI:
    """CI on `sha` as the queue's stored facts say (no GitHub read); `none` when nothing was heard of it."""
    if not sha:
        return texts.CI()
    async with services.store.sessions() as session:
        row = await session.scalar(select(CommitFacts).where(CommitFacts.repository == repository,
                                                             CommitFacts.sha == sha))
    if row is None:
        return texts.CI()
    try:
        runs, statuses = json.loads(row.runs or "{}"), json.loads(row.statuses or "{}")
    except ValueError:
        return texts.CI()
    if not isinstance(runs, dict) or not isinstance(statuses, dict):
        return texts.CI()
    return ci_from_facts(runs, statuses, own_app_id=services.settings.app_id)


def standing_of(row: PullRequest, run: Run, ranking: str | None) -> texts.Standing | None:
    """The pull request's place in its ranked fan-out (`triggers.ranking`, the row's `rank` winning), or None when
    the fan-out is not ranked (or has one attempt)."""
    if not ranking:
        return None
    try:
        data = json.loads(ranking)
        attempts = int(data["attempts"])
        rows = [r for r in data.get("rows") or [] if isinstance(r, dict)]
        mine = next((r for r in rows if r.get("pr") == row.number or r.get("run_id") == row.run_id), None)
        rank = row.rank if row.rank is not None else (int(mine["rank"]) if mine is not None else None)
        attempt = int(mine["attempt"]) if mine is not None and mine.get("attempt") else run.attempt
        reason = row.rank_reason or (str(mine.get("reason") or "") if mine is not None else "")
        judged = data.get("source") == "judge"
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("pull request #%s: its fan-out's ranking is not readable; the brief leaves it out", row.number)
        return None
    if rank is None or attempts < 2:
        return None
    return texts.Standing(attempt=attempt, attempts=attempts, rank=rank, reason=reason, judged=judged)


async def refresh_brief(services: Services, github: GitHubAPI, row: PullRequest) -> bool:
    """Render the pull request's body again and edit it on GitHub only if the text changed. True when it wrote.

    Pull requests opened before the brief existed (no `brief_context`), closed ones and follow-ups on a person's
    pull request are left alone. GitHub refusing the edit is logged; the next refresh tries again."""
    pulls = PullRequestStore(services.store, clock=services.clock)
    current = await pulls.get(row.id)
    if current is None or current.state != OPEN or current.run_id is None:
        return False
    context = BriefContext.from_json(current.brief_context)
    if context is None:
        return False
    run = (await pulls.runs_of([current.run_id])).get(current.run_id)
    if run is None or not run.result:
        return False
    result = RunResult.model_validate_json(run.result)
    trigger = None
    siblings: list[int] = []
    if current.trigger_id is not None:
        async with services.store.sessions() as session:
            trigger = await session.get(Trigger, current.trigger_id)
        siblings = [p.number for p in await pulls.siblings(current.trigger_id, excluding=current.id)]
    ci = await ci_of_head(services, current.repository, current.head_sha)
    standing = standing_of(current, run, trigger.ranking if trigger is not None else None)
    text = texts.body(run, result, context.parts(siblings, ci, standing))
    found = digest(text)
    if found == current.body_sha256:
        return False
    owner, _, repo = current.repository.partition("/")
    try:
        await github.update_pull_request(current.installation_id, owner, repo, current.number, body=text)
    except GitHubError as exc:
        log.warning("%s#%s: could not refresh the reviewer brief: %s", current.repository, current.number, exc)
        return False
    await pulls.set_body(current.id, digest=found)
    log.info("%s#%s: reviewer brief refreshed", current.repository, current.number)
    return True


async def refresh_fan_out(services: Services, github: GitHubAPI, trigger_id: int) -> int:
    """`refresh_brief` on every open pull request of a trigger (after its ranking was published); how many were
    edited."""
    pulls = PullRequestStore(services.store, clock=services.clock)
    edited = 0
    for row in await pulls.siblings(trigger_id):
        edited += await refresh_brief(services, github, row)
    return edited


async def refresh_heads(services: Services, github: GitHubAPI, repository: str, numbers: set[int]) -> int:
    """`refresh_brief` on the Kickoff pull requests among `numbers` (CI concluded on their heads)."""
    pulls = PullRequestStore(services.store, clock=services.clock)
    edited = 0
    for number in sorted(numbers):
        row = await pulls.by_number(repository, number)
        if row is not None and row.run_id is not None:
            edited += await refresh_brief(services, github, row)
    return edited


__all__ = [
    "BriefContext",
    "ci_from_facts",
    "ci_of_head",
    "digest",
    "refresh_brief",
    "refresh_fan_out",
    "refresh_heads",
    "standing_of",
]
