"""The CI verdict on pull request heads from the stored commit facts (bot.queue.facts), without a GitHub read: what
the fan-out ranking (bot.runs.ranking) weighs. Kickoff's own checks count for nothing, as in the queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from bot.queue.facts import FactStore
from bot.queue.reconcile import AGENT_CHECK, ci_of, has_checks
from bot.ranking import CI

IGNORED: Final = frozenset({AGENT_CHECK, "review-queue"})


class HeadCI:
    """`CiLookup` of bot.runs.ranking: each head's verdict; `none` where CI has not reported anything."""

    def __init__(self, facts: FactStore, own_app_id: int | None) -> None:
        self.facts = facts
        self.own_app_id = own_app_id

    async def __call__(self, repository: str, shas: Sequence[str]) -> Mapping[str, CI]:
        known = await self.facts.commits(repository, shas)
        ignore = set(IGNORED)
        verdicts: dict[str, CI] = {}
        for sha in shas:
            commit = known.get(sha)
            if commit is None:
                verdicts[sha] = "none"
                continue
            runs, statuses = commit.run_list(), commit.status_list()
            if not has_checks(runs, statuses, ignore=ignore, own_app_id=self.own_app_id):
                verdicts[sha] = "none"
                continue
            verdicts[sha], _failing = ci_of(runs, statuses, ignore=ignore, own_app_id=self.own_app_id)
        return verdicts
