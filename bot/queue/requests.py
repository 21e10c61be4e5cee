"""The queue commands: `/agent queue`, `bump`, `priority`, `skip`, `prefer`, `unqueue`, `requeue`, `hold`, `unhold`,
`rebase`, and the `review-queue` check's buttons ("Move to front" is `bump`, "Remove" is `unqueue`).

The sender has passed the permission gate (the queue's handlers, for a comment or a button). Each command changes
the pull request's queue state and reconciles its queue at once (so the checks show the result), focused on that
pull request (the others' facts come from the database, `bot.queue.facts`); the handler posts
the answer, a button answers through the check.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import messages
from bot.config import RepoConfig
from bot.github import GitHubError
from bot.queue import texts
from bot.queue.service import Outcome, QueueService, Updated
from bot.queue.store import CLOSED, MERGED, OPEN, QueueKey, memory_of
from bot.queue.texts import Reason
from bot.slash_commands import Priority
from bot.store.models import PullRequest

QUEUE_VERBS = ("queue", "bump", "priority", "skip", "prefer", "unqueue", "requeue", "hold", "unhold", "rebase")


@dataclass(frozen=True, slots=True)
class Request:
    """One queue command on one pull request, from a comment or a button."""

    verb: str
    installation_id: int
    repository: str
    number: int
    sender: str
    config: RepoConfig
    priority: Priority | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repo(self) -> str:
        return self.repository.split("/", 1)[1]


def _now_text(outcome: Outcome, number: int) -> str:
    check = outcome.plan.checks.get(number) if outcome.plan is not None else None
    return messages.QUEUE_NOW.format(title=check.title) if check is not None else ""


async def apply(service: QueueService, request: Request) -> str:
    """Carry out one queue command; the reply to post (comments) or log (buttons)."""
    store = service.store
    row = await store.get(request.repository, request.number)
    if row is None or row.state == MERGED:
        return messages.QUEUE_NOT_QUEUED.format(number=request.number)
    key = QueueKey(request.installation_id, request.repository, row.base_ref)
    now = service.services.clock()
    number = request.number
    if request.verb == "queue":
        outcome = await service.reconcile(key, focus={number})
        check = outcome.plan.checks.get(number) if outcome.plan is not None else None
        if check is None:
            return messages.QUEUE_NOT_QUEUED.format(number=number)
        assert outcome.plan is not None  # it has a check
        verdict = outcome.plan.verdicts[number]
        place = (
            messages.QUEUE_PLACE.format(position=verdict.position, total=outcome.plan.slots)
            if verdict.position is not None
            else messages.QUEUE_NO_PLACE
        )
        return messages.QUEUE_SHOW.format(number=number, title=check.title, place=place, summary=check.summary)
    if request.verb == "rebase":
        return await _rebase(service, request, row, key)
    if request.verb == "prefer":
        return await _prefer(service, request, row, key)
    if request.verb == "skip":
        outcome = await service.reconcile(key, focus={number})
        other = outcome.plan.behind(number) if outcome.plan is not None else None
        if other is None:
            return messages.QUEUE_SKIP_NOTHING.format(number=number)
        await store.update(row.id, let_ahead=other)
        again = await service.reconcile(key, focus={number})
        return messages.QUEUE_SKIPPED.format(number=number, other=other, now=_now_text(again, number))
    values: dict[str, object]
    template: str
    if request.verb == "bump":
        values, template = {"bumped_at": now}, messages.QUEUE_BUMPED
    elif request.verb == "priority":
        values, template = {"priority": request.priority}, messages.QUEUE_PRIORITY_SET
    elif request.verb == "unqueue":
        values, template = {"unqueued": True, "bumped_at": None}, messages.QUEUE_UNQUEUED
    elif request.verb == "requeue":
        # Back in, and a failed update may be tried again.
        memory = memory_of(row).evolve(updated_from=None, update_base=None)
        values = {"unqueued": False, "queue_check": memory.dump()}
        if row.dequeued != Reason.CLOSED.value:
            values["dequeued"] = None
        template = messages.QUEUE_REQUEUED
    elif request.verb == "hold":
        values, template = {"held": True}, messages.QUEUE_HELD
    elif request.verb == "unhold":
        values, template = {"held": False}, messages.QUEUE_UNHELD
    else:
        raise ValueError(f"not a queue verb: {request.verb}")
    await store.update(row.id, **values)
    outcome = await service.reconcile(key, focus={number})
    return template.format(
        number=number, sender=request.sender, priority=request.priority, now=_now_text(outcome, number)
    )


async def _prefer(service: QueueService, request: Request, row: PullRequest, key: QueueKey) -> str:
    """`/agent prefer`: this attempt leads its fan-out (the latest preferred open sibling leads, whatever the
    ranks say), and the fan-out's review slot is its."""
    number = request.number
    if row.state != OPEN:
        return messages.QUEUE_PREFER_CLOSED.format(number=number)
    siblings = await service.store.siblings(row) if row.trigger_id is not None and row.run_id is not None else []
    if not siblings:
        return messages.QUEUE_PREFER_ALONE.format(number=number)
    await service.store.update(row.id, preferred_at=service.services.clock())
    outcome = await service.reconcile(key, focus={number})
    now = _now_text(outcome, number)
    alternatives = outcome.plan.alternatives if outcome.plan is not None else {}
    if number in alternatives or row.unqueued or row.dequeued is not None:
        # Taken out, or changes requested while a sibling has none: the preference stands, but it does not lead.
        return messages.QUEUE_PREFER_PASSED_OVER.format(number=number, sender=request.sender, now=now)
    shown = ", ".join(f"#{sibling.number}" for sibling in siblings)
    return messages.QUEUE_PREFERRED.format(number=number, sender=request.sender, siblings=shown, now=now)


async def _rebase(service: QueueService, request: Request, row: PullRequest, key: QueueKey) -> str:
    github = service.services.require_github()
    if row.state in (CLOSED, MERGED):
        return messages.QUEUE_REBASE_CLOSED.format(number=request.number)
    pull = await github.get_pull_request(request.installation_id, request.owner, request.repo, request.number)
    if pull.state != OPEN:
        return messages.QUEUE_REBASE_CLOSED.format(number=request.number)
    key = QueueKey(request.installation_id, request.repository, pull.base_ref)
    try:
        base_sha = await github.get_branch_sha(request.installation_id, request.owner, request.repo, pull.base_ref)
        done = await service.update(key, row, pull.head_sha, base_sha, request.config, agent_on_conflict=True)
    except GitHubError as exc:
        return messages.QUEUE_REBASE_FAILED.format(number=request.number, base=pull.base_ref, error=exc.message)
    await service.reconcile(key, focus={request.number})
    replies = {
        Updated.UPDATED: messages.QUEUE_REBASED,
        Updated.CURRENT: messages.QUEUE_REBASE_CURRENT,
        Updated.MOVED: messages.QUEUE_REBASE_CURRENT,
        Updated.AGENT: messages.QUEUE_REBASE_AGENT,
        Updated.NO_AGENT: messages.QUEUE_REBASE_NO_AGENT,
        Updated.CONFLICT: messages.QUEUE_REBASE_NO_AGENT,
        Updated.FAILED: messages.QUEUE_REBASE_FAILED,
    }
    return replies[done].format(number=request.number, base=pull.base_ref, error="see the `review-queue` check")


async def show_repository(service: QueueService, installation_id: int, repository: str) -> str:
    """`/agent queue` on an issue: every queue of the repository as a table."""
    parts: list[str] = []
    for base in await service.store.bases(repository):
        outcome = await service.reconcile(QueueKey(installation_id, repository, base), focus=())
        if outcome.plan is None or outcome.snapshot is None:
            continue
        rows = [
            texts.TableRow(entry.number, entry.url, entry.title, outcome.plan.verdicts[entry.number].position,
                           outcome.plan.checks[entry.number].title)
            for entry in outcome.snapshot.entries
            if entry.number in outcome.plan.checks and entry.in_queue and not entry.closed
        ]
        at = {number: index for index, number in enumerate(outcome.plan.order)}  # alternatives behind leaders
        rows.sort(key=lambda row: (row.number not in at, at.get(row.number, 0), row.number))
        table = texts.table(repository, base, rows)
        lines = ["| Position | Pull request | Title | State |", "| ---: | --- | --- | --- |", *table.lines[:50]]
        parts.append(messages.QUEUE_SHOW_ISSUE.format(base=base, table="\n".join(lines)))
    return "\n\n".join(parts) or messages.QUEUE_SHOW_EMPTY
