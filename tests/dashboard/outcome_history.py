"""A known history for the outcome metrics: runs, pull requests, reviews and follow-ups at fixed offsets from `now`,
with the figures it must give over the 30-day window worked out by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bot.store.db import Store
from bot.store.models import PullFacts, PullRequest, Run, RunState, Trigger

INSTALLATION = 4242
SHOP = "octo/shop"
LAB = "octo/lab"

EXPECTED = {
    # (repository, agent): runs, cost, opened, merged, closed unmerged, open, rounds, median seconds to merge
    (LAB, "claude"): dict(runs=1, cost_usd=2.0, opened=1, merged=0, closed=1, open=0, review_rounds=0,
                          merge_seconds_median=None),
    (SHOP, "aider"): dict(runs=1, cost_usd=None, opened=0, merged=0, closed=0, open=0, review_rounds=0,
                          merge_seconds_median=None),
    (SHOP, "claude"): dict(runs=6, cost_usd=3.0, opened=4, merged=3, closed=0, open=1, review_rounds=3,
                           merge_seconds_median=18000.0),
    (SHOP, "codex"): dict(runs=4, cost_usd=1.1, opened=2, merged=1, closed=1, open=0, review_rounds=3,
                          merge_seconds_median=1800.0),
}
"""In order: octo/lab before octo/shop, agents by name within a repository."""


async def seed_outcomes(store: Store, now: datetime) -> None:
    """Write the history as the services would have left it."""
    def ago(**parts: float) -> datetime:
        return now - timedelta(**parts)

    async with store.sessions.begin() as session:
        counter = iter(range(1, 1000))

        def trigger(repository: str, number: int, source: str, *, on_pull: bool, at: datetime) -> Trigger:
            made = Trigger(delivery_id=f"d-{next(counter)}", seq=0, installation_id=INSTALLATION,
                           repository=repository, issue_number=number, is_pull_request=on_pull, source=source,
                           task="fix", sender="mona", created_at=at)
            session.add(made)
            return made

        async def run(repository: str, agent: str, state: str, *, finished: datetime | None, cost: float | None,
                      pr: int | None = None, followup_on: int | None = None) -> Run:
            if followup_on is not None:
                made_by = trigger(repository, followup_on, "review", on_pull=True, at=(finished or now) - timedelta(
                    minutes=30))
            else:
                made_by = trigger(repository, 1, "label", on_pull=False, at=(finished or now) - timedelta(hours=1))
            await session.flush()
            started = (finished or now) - timedelta(minutes=20)
            made = Run(trigger_id=made_by.id, installation_id=INSTALLATION, repository=repository,
                       issue_number=followup_on or 1, task="fix", agent=agent, attempt=1,
                       kind="followup" if followup_on is not None else "new", state=state, cost_usd=cost,
                       pr_number=pr if pr is not None else followup_on, created_at=started, updated_at=finished or now,
                       started_at=started, finished_at=finished)
            session.add(made)
            await session.flush()
            return made

        def pull(repository: str, number: int, opener: Run | None, state: str, *, opened: datetime,
                 decided: datetime | None = None) -> None:
            session.add(PullRequest(
                installation_id=INSTALLATION, repository=repository, number=number,
                run_id=opener.id if opener is not None else None, agent=opener.agent if opener else None,
                title=f"fix #{number}", head_ref=f"kickoff/{number}", base_ref="main", state=state,
                created_at=opened, updated_at=decided or opened,
                merged_at=decided if state == "merged" else None, closed_at=decided if state != "open" else None,
            ))

        def reviews(repository: str, number: int, *kept: tuple[int, str, str]) -> None:
            text = json.dumps({str(i): [login, state] for i, login, state in kept}, sort_keys=True)
            session.add(PullFacts(repository=repository, number=number, reviews=text, updated_at=now))

        # Outside the window: a merged pull request 40 days ago, and a cost that must not count.
        old = await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=40), cost=9.99, pr=100)
        pull(SHOP, 100, old, "merged", opened=ago(days=40), decided=ago(days=39))
        reviews(SHOP, 100, (90, "alice", "CHANGES_REQUESTED"))

        # claude in octo/shop: 3 merged after 1 day, 2 hours and 5 hours (median 5 h), one open.
        r1 = await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=20), cost=1.0, pr=101)
        pull(SHOP, 101, r1, "merged", opened=ago(days=20), decided=ago(days=19))
        reviews(SHOP, 101, (1, "alice", "CHANGES_REQUESTED"), (2, "alice", "APPROVED"))
        await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=19, hours=12), cost=0.25, followup_on=101)
        # One round: the review requested changes and its `/agent` command started the follow-up above.
        r2 = await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=10), cost=0.5, pr=102)
        pull(SHOP, 102, r2, "merged", opened=ago(days=10), decided=ago(days=10) + timedelta(hours=2))
        reviews(SHOP, 102, (3, "bob", "APPROVED"))
        await run(SHOP, "claude", RunState.FAILED, finished=ago(days=5), cost=0.75)
        r5 = await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=3), cost=0.5, pr=103)
        pull(SHOP, 103, r5, "open", opened=ago(days=3))
        # Two reviews requested changes (the dismissed one no longer counts), one person's follow-up, one fix of
        # Kickoff's own (red CI): two rounds.
        reviews(SHOP, 103, (4, "alice", "CHANGES_REQUESTED"), (5, "bob", "CHANGES_REQUESTED"),
                (6, "carol", "DISMISSED"))
        trigger(SHOP, 103, "comment", on_pull=True, at=ago(days=2))
        trigger(SHOP, 103, "fix", on_pull=True, at=ago(days=2))
        r6 = await run(SHOP, "claude", RunState.SUCCEEDED, finished=ago(days=4), cost=None, pr=104)
        pull(SHOP, 104, r6, "merged", opened=ago(days=4), decided=ago(days=4) + timedelta(hours=5))

        # codex in octo/shop: one superseded (closed unmerged), one merged after 30 minutes, one timed out, and one
        # whose pull request is still being opened (not counted as opened).
        c1 = await run(SHOP, "codex", RunState.SUCCEEDED, finished=ago(days=20), cost=0.4, pr=105)
        pull(SHOP, 105, c1, "closed", opened=ago(days=20), decided=ago(days=18))
        trigger(SHOP, 105, "review_comment", on_pull=True, at=ago(days=19))  # no review kept: one round
        c2 = await run(SHOP, "codex", RunState.SUCCEEDED, finished=ago(days=2), cost=0.6, pr=106)
        pull(SHOP, 106, c2, "merged", opened=ago(days=2), decided=ago(days=2) + timedelta(minutes=30))
        reviews(SHOP, 106, (7, "alice", "CHANGES_REQUESTED"))
        trigger(SHOP, 106, "comment", on_pull=True, at=ago(days=2))
        trigger(SHOP, 106, "comment", on_pull=True, at=ago(days=2))  # two follow-ups, one review: two rounds
        await run(SHOP, "codex", RunState.TIMED_OUT, finished=ago(days=1), cost=None)
        c4 = await run(SHOP, "codex", RunState.SUCCEEDED, finished=ago(hours=1), cost=0.1, pr=107)
        pull(SHOP, 107, c4, "opening", opened=ago(hours=1))

        # aider in octo/shop: a failed run, nothing else.
        await run(SHOP, "aider", RunState.FAILED, finished=ago(days=6), cost=None)
        # Still running: not finished, so not counted.
        await run(SHOP, "aider", RunState.RUNNING, finished=None, cost=None)

        # A person's pull request queued with `kickoff:queue`: no run, not an agent's.
        pull(SHOP, 110, None, "merged", opened=ago(days=3), decided=ago(days=2))

        # claude in octo/lab: closed unmerged. A comment on octo/shop's #7 (an issue there) is not octo/lab's #7.
        l1 = await run(LAB, "claude", RunState.SUCCEEDED, finished=ago(days=15), cost=2.0, pr=7)
        pull(LAB, 7, l1, "closed", opened=ago(days=15), decided=ago(days=14))
        trigger(SHOP, 7, "comment", on_pull=False, at=ago(days=14))
        trigger(SHOP, 7, "comment", on_pull=True, at=ago(days=14))
