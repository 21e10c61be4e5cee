"""Agents fix their own red CI and conflicts: a bounded loop per Kickoff pull request.

A failing check on a Kickoff pull request's current head (not Kickoff's own `agent-run` or queue check), or a
conflict with its base, plans a fix run on the pull request's branch: a trigger with source `fix`, task `fix`, the
agent that opened the pull request. At most `limits.max_fix_attempts` per pull request (`pull_requests.fix_attempts`,
counted with a compare-and-set so two deliveries never both count the same attempt); then Kickoff says once, on the
pull request, that it stopped (the count is then set one past the limit). No fix starts while a follow-up or fix
is already queued or running on the pull request: its push starts CI again.

The loop is Kickoff acting on its own pull request (no fork, no person's code), so it needs no permission gate.
Required checks are not distinguished from optional ones (reading branch protection needs `administration`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot import messages
from bot.config import RepoConfig
from bot.github import GitHubAPI
from bot.routing import Event, Site
from bot.runs.planning import find_trigger
from bot.services import Services
from bot.store.models import PullRequest
from bot.store.pulls import OPEN
from bot.triggers import Triggers

log = logging.getLogger(__name__)

FIX_TASK = "fix"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a pull request needs a fix: the words for the tracking reason and the agent's instructions."""

    why: str
    instructions: str

    @classmethod
    def check(cls, name: str) -> Failure:
        shown = " ".join(name.split())[:100].replace("`", "'")
        return cls(messages.FIX_WHY_CI.format(check=shown), messages.FIX_CI_INSTRUCTIONS.format(check=shown))

    @classmethod
    def conflict(cls, base: str) -> Failure:
        shown = base.replace("`", "'")
        return cls(messages.FIX_WHY_CONFLICT.format(base=shown), messages.FIX_CONFLICT_INSTRUCTIONS.format(base=shown))


def own_checks(config: RepoConfig) -> frozenset[str]:
    return frozenset({messages.AGENT_CHECK_NAME, config.queue.check_name})


async def consider_fix(
    services: Services, triggers: Triggers, github: GitHubAPI, event: Event, site: Site, row: PullRequest,
    config: RepoConfig, failure: Failure, *, seq: int,
) -> bool:
    """Plan a fix run for `row` (through `triggers`) unless one runs, the bound is reached, or this delivery planned
    it already."""
    if row.state != OPEN or row.run_id is None:
        return False
    pulls = services.pulls
    # A sibling merged: this PR is about to be closed as superseded, so fixing its conflict would be wasted.
    if config.queue.close_siblings and row.trigger_id is not None and await pulls.sibling_merged(row.trigger_id):
        return False
    planned = await find_trigger(services, event.delivery_id, seq)
    task = config.task(FIX_TASK)
    limit = config.limits.max_fix_attempts
    if planned is None:
        if task is None or limit == 0:
            return False
        if await pulls.active_runs_on(row.repository, row.number):
            return False
        attempt = await pulls.take_fix_attempt(row, limit)
        if attempt is None:
            if row.fix_attempts >= limit and await pulls.give_up_fixing(row, limit):
                await github.comment(site.installation_id, site.owner, site.repo, row.number,
                                     messages.FIX_GAVE_UP.format(why=failure.why, limit=limit))
            return False
    else:
        attempt = row.fix_attempts
    agents = (row.agent,) if row.agent and row.agent in config.agents else (task.agents[0],) if task else ()
    if not agents:
        return False
    trigger = await services.runs.trigger(row.trigger_id) if row.trigger_id is not None else None
    sender = trigger.sender if trigger is not None else "kickoff"
    planned = await triggers.plan(
        event, site, seq=seq, source="fix", task=FIX_TASK, agents=agents, attempts=1,
        sender=sender, instructions=failure.instructions,
        reason=messages.FIX_STARTED.format(attempt=attempt, limit=limit, why=failure.why),
    )
    await triggers.ensure_tracking_comment(site, planned)
    log.info("planned fix attempt %s of %s for %s#%s: %s", attempt, limit, row.repository, row.number, failure.why)
    return True
