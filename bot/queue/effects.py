"""What a reconcile writes: the queue's memory of each entry, the `review-queue` checks whose desired state changed,
and the merge lane's calls (bring the head up to date with its base, merge it with `queue.merge: auto`).

Each write is stored once GitHub has it, and each update is remembered per (head, base), so a reconcile run again
with nothing changed writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from bot import messages
from bot.config import RepoConfig
from bot.config.model import Queue as QueueConfig
from bot.github import CheckRunAction, GitHubAPI, GitHubError, NotFound, ValidationFailed
from bot.prs import siblings
from bot.queue.facts import FactStore
from bot.queue.model import DesiredCheck, Merge, Plan, UpdateBranch, diff
from bot.queue.reconcile import Outcome, buttons_for
from bot.queue.store import MERGED, Memory, QueueKey, QueueStore, memory_of
from bot.queue.texts import Reason
from bot.runs.planning import TriggerRequest, plan_trigger
from bot.services import Services
from bot.store.models import PullRequest

log = logging.getLogger(__name__)


class Updated(StrEnum):
    """What bringing a pull request up to date did."""

    UPDATED = "updated"  # GitHub merged the base into it
    CURRENT = "current"  # it already contained the base
    MOVED = "moved"  # its head moved meanwhile
    CONFLICT = "conflict"
    AGENT = "agent"  # it conflicts: an agent rebase run is planned
    NO_AGENT = "no_agent"  # it conflicts and there is no `fix` task for an agent
    FAILED = "failed"  # GitHub refused (recorded as UPDATE_FAILED)


class QueueWriter:
    """The writes of one process's queue service (`QueueService.writer`)."""

    def __init__(self, services: Services, store: QueueStore, facts: FactStore | None = None) -> None:
        self.services = services
        self.store = store
        self.facts = facts

    async def save_state(
        self,
        rows: Mapping[int, PullRequest],
        memories: Mapping[int, Memory],
        changes: Mapping[int, Mapping[str, Any]],
        result: Plan,
    ) -> None:
        """Store what changed of each row and of the queue's memory of it, in one batch."""
        updates: dict[int, dict[str, Any]] = {}
        for number, row in rows.items():
            values = {name: value for name, value in changes.get(number, {}).items() if getattr(row, name) != value}
            verdict = result.verdicts.get(number)
            memory = memories[number]
            if verdict is not None:
                memory = memory.evolve(position=verdict.position)
            if memory != memory_of(row):
                values["queue_check"] = memory.dump()
            if values:
                updates[row.id] = values
        await self.store.update_many(updates)

    async def write_checks(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        rows: Mapping[int, PullRequest],
        memories: dict[int, Memory],
        result: Plan,
        outcome: Outcome,
    ) -> None:
        """Write the checks whose desired state changed: the one that takes `success` away before the one that
        grants it; each stored once GitHub has it."""
        current = {number: memory.check for number, memory in memories.items() if memory.check is not None}
        stored: dict[int, dict[str, Any]] = {}
        try:
            for write in diff(current, result.checks):
                row, verdict = rows[write.number], result.verdicts[write.number]
                check, previous = write.check, current.get(write.number)
                reopen = previous is not None and previous.status == "completed" and check.status != "completed"
                actions = buttons_for(verdict.state)
                check_run_id = row.queue_check_run_id
                if write.create or reopen or check_run_id is None:
                    check_run_id = await self._create(github, key, queue, check, actions)
                else:
                    try:
                        await github.update_check_run(
                            key.installation_id, key.owner, key.repo, check_run_id, conclusion=check.conclusion,
                            title=check.title, summary=check.summary, actions=actions,
                        )
                    except NotFound:
                        check_run_id = await self._create(github, key, queue, check, actions)
                outcome.writes.append(write)
                memory = memories[write.number].evolve(
                    check=check, state=verdict.state.value, reason=verdict.reason.value if verdict.reason else None,
                    position=verdict.position,
                )
                memories[write.number] = memory
                values: dict[str, Any] = {"queue_check": memory.dump(), "queue_check_run_id": check_run_id}
                if verdict.reason is Reason.CLOSED:
                    values["dequeued"] = Reason.CLOSED.value  # its last word: the queue forgets it from now on
                stored[row.id] = values
                row.queue_check_run_id = check_run_id
        finally:
            # What GitHub has, in one transaction, even when a later write failed.
            await self.store.update_many(stored)

    async def _create(
        self,
        github: GitHubAPI,
        key: QueueKey,
        queue: QueueConfig,
        check: DesiredCheck,
        actions: Sequence[CheckRunAction],
    ) -> int:
        return await github.create_check_run(
            key.installation_id, key.owner, key.repo, name=queue.check_name, head_sha=check.head_sha,
            conclusion=check.conclusion, title=check.title, summary=check.summary, actions=actions,
        )

    async def act(
        self,
        github: GitHubAPI,
        key: QueueKey,
        config: RepoConfig,
        rows: Mapping[int, PullRequest],
        memories: dict[int, Memory],
        result: Plan,
        outcome: Outcome,
    ) -> None:
        """The plan's merge-lane actions: bring the head up to date (once per head and base) or merge it; a merge
        GitHub refuses for now (405, 409, 422) is tried again at a later reconcile."""
        for action in result.actions:
            row = rows[action.number]
            if isinstance(action, UpdateBranch):
                memory = memories[action.number]
                if (memory.updated_from, memory.update_base) == (action.expected_head_sha, action.base_sha):
                    continue  # done once for this head and base: wait for its push
                done = await self.update(key, row, action.expected_head_sha, action.base_sha, config, memory)
                if done in (Updated.UPDATED, Updated.AGENT):
                    outcome.updated.append(action.number)
            elif isinstance(action, Merge):
                try:
                    await github.merge_pull(
                        key.installation_id, key.owner, key.repo, action.number, sha=action.expected_head_sha,
                        merge_method=action.method,
                    )
                except (ValidationFailed, GitHubError) as exc:
                    if exc.status not in (405, 409, 422):
                        raise
                    log.info("%s#%s could not be merged yet: %s", key.repository, action.number, exc)
                    continue
                now = self.services.clock()
                await self.store.update(row.id, state=MERGED, merged_at=now)
                outcome.merged.append(action.number)
                log.info("%s#%s merged by the queue (%s)", key.repository, action.number, action.method)
                # Its fan-out's siblings close now, before the queue advances (the `pull_request.closed` webhook
                # would close them too, later): the advancing reconcile then sees them closed, rather than
                # writing each a "conflicts with its base" check first and a "closed" one after.
                try:
                    await siblings.close_superseded(self.services, github, row, config)
                except GitHubError as exc:
                    log.warning("%s#%s merged; closing its siblings failed (the merge's webhook tries again): %s",
                                key.repository, action.number, exc)

    async def update(
        self,
        key: QueueKey,
        row: PullRequest,
        head_sha: str,
        base_sha: str,
        config: RepoConfig,
        memory: Memory | None = None,
        *,
        agent_on_conflict: bool | None = None,
    ) -> Updated:
        """Bring one pull request up to date with its base: GitHub's update-branch (a merge; `queue.update_method:
        rebase` falls back to it, as GitHub's REST API only merges), or an agent rebase run when it conflicts and
        `update_method` is `agent` (or `agent_on_conflict`). Remembered per (head, base): never done twice."""
        github = self.services.require_github()
        memory = memory or memory_of(row)
        use_agent = config.queue.update_method == "agent" if agent_on_conflict is None else agent_on_conflict
        try:
            await github.update_branch(key.installation_id, key.owner, key.repo, row.number, head_sha)
        except ValidationFailed as exc:
            if self.facts is not None:
                # GitHub's answer says something of the pull request (moved, conflicting): read it again next time.
                await self.facts.mark_stale(key.repository, [row.number])
            text = exc.message.lower()
            if "no new commits" in text:
                await self._remember_update(row, memory, head_sha, base_sha)
                return Updated.CURRENT
            if "expected_head_sha" in text or "head sha" in text:
                return Updated.MOVED  # it moved meanwhile: the next reconcile sees the new head
            if "conflict" in text:
                await self._remember_update(row, memory, head_sha, base_sha)
                if not use_agent:
                    return Updated.CONFLICT  # GitHub reports the conflict: the entry shows CONFLICT_WITH_BASE
                planned = await self._plan_agent_rebase(key, row, head_sha, base_sha, config)
                return Updated.AGENT if planned else Updated.NO_AGENT
            log.warning("%s#%s: update-branch refused: %s", key.repository, row.number, exc)
            await self._remember_update(row, memory, head_sha, base_sha, dequeued=Reason.UPDATE_FAILED)
            return Updated.FAILED
        except GitHubError as exc:
            if exc.status not in (403, 404, 409):
                raise
            log.warning("%s#%s: update-branch failed: %s", key.repository, row.number, exc)
            await self._remember_update(row, memory, head_sha, base_sha, dequeued=Reason.UPDATE_FAILED)
            return Updated.FAILED
        await self._remember_update(row, memory, head_sha, base_sha)
        log.info("%s#%s brought up to date with %s@%s", key.repository, row.number, key.base, base_sha[:7])
        return Updated.UPDATED

    async def _remember_update(
        self, row: PullRequest, memory: Memory, head_sha: str, base_sha: str, *, dequeued: Reason | None = None
    ) -> None:
        updated = memory.evolve(updated_from=head_sha, update_base=base_sha)
        values: dict[str, Any] = {}
        if dequeued is not None:
            values["dequeued"] = dequeued.value
        await self.store.save_memory(row.id, updated, **values)
        row.queue_check = updated.dump()

    async def _plan_agent_rebase(
        self, key: QueueKey, row: PullRequest, head_sha: str, base_sha: str, config: RepoConfig
    ) -> bool:
        """A follow-up `fix` run on the pull request that merges the base and resolves the conflicts (planned once
        per head and base: the trigger is keyed by them)."""
        task = config.task("fix")
        if task is None or not task.agents:
            log.warning("%s#%s conflicts, but there is no `fix` task to rebase it", key.repository, row.number)
            return False
        await plan_trigger(
            self.services,
            TriggerRequest(
                delivery_id=f"queue-rebase:{key.repository}#{row.number}:{head_sha[:12]}:{base_sha[:12]}"[:100],
                seq=0,
                installation_id=key.installation_id,
                repository=key.repository,
                issue_number=row.number,
                task="fix",
                agents=(task.agents[0],),
                attempts=1,
                sender="kickoff",
                source="fix",
                instructions=messages.QUEUE_REBASE_INSTRUCTIONS.format(base=key.base),
                is_pull_request=True,
                base_branch=key.base,
                reason=messages.QUEUE_REBASE_REASON.format(base=key.base),
            ),
        )
        return True
