"""The outcome metrics, exact on a known history (tests/dashboard/outcome_history.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dashboard.outcomes import Outcome, outcomes, review_rounds
from bot.store.db import Store
from tests.dashboard.outcome_history import EXPECTED, LAB, SHOP, seed_outcomes

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_outcomes_over_30_days_are_exact(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    try:
        await seed_outcomes(store, NOW)
        found = await outcomes(store, NOW)
        assert found.since == NOW - timedelta(days=30)
        assert found.label == "30 days"
        assert [(row.repository, row.agent) for row in found.rows] == [
            (LAB, "claude"), (SHOP, "aider"), (SHOP, "claude"), (SHOP, "codex"),
        ]
        assert {(row.repository, row.agent): row for row in found.rows} == {
            key: Outcome(repository=key[0], agent=key[1], **values)  # type: ignore[arg-type]
            for key, values in EXPECTED.items()
        }
        claude, codex = found.rows[2], found.rows[3]
        assert (claude.acceptance, claude.cost_per_merged, claude.merge_median) == (1.0, 1.0, timedelta(hours=5))
        assert (codex.acceptance, codex.cost_per_merged, codex.rounds_per_pr) == (0.5, 1.1, 1.5)
        aider, lab = found.rows[1], found.rows[0]
        assert (aider.acceptance, aider.cost_per_merged, aider.rounds_per_pr) == (None, None, None)
        assert (lab.acceptance, lab.cost_per_merged) == (0.0, None)
        assert codex.as_json() == {
            "repository": SHOP, "agent": "codex", "runs": 4, "cost_usd": 1.1, "prs_opened": 2, "prs_merged": 1,
            "prs_closed_unmerged": 1, "prs_open": 0, "acceptance_rate": 0.5, "merge_seconds_median": 1800.0,
            "cost_per_merged_usd": 1.1, "review_rounds": 3, "review_rounds_per_pr": 1.5,
        }

        only = await outcomes(store, NOW, repo=LAB)
        assert [(row.repository, row.agent) for row in only.rows] == [(LAB, "claude")]

        # A longer window takes in the pull request merged 40 days ago (after 1 day) and its run's cost.
        longer = await outcomes(store, NOW, repo=SHOP, window=timedelta(days=45))
        older = next(row for row in longer.rows if row.agent == "claude")
        assert (older.runs, older.opened, older.merged, older.review_rounds) == (7, 5, 4, 4)
        assert older.cost_usd == 12.99
        assert older.merge_seconds_median == (18000.0 + 86400.0) / 2  # the middle two of 2 h, 5 h, 1 d, 1 d

        # Ten days later the first fortnight has left the window.
        later = await outcomes(store, NOW + timedelta(days=11), repo=SHOP)
        claude_later = next(row for row in later.rows if row.agent == "claude")
        assert (claude_later.runs, claude_later.opened, claude_later.merged) == (4, 3, 2)
        assert claude_later.merge_seconds_median == (7200.0 + 18000.0) / 2

        assert (await outcomes(store, NOW - timedelta(days=100))).rows == ()
    finally:
        await store.close()


def test_review_rounds_take_the_larger_count() -> None:
    requested = '{"1": ["alice", "CHANGES_REQUESTED"], "2": ["bob", "APPROVED"], "3": ["bob", "CHANGES_REQUESTED"]}'
    assert review_rounds(requested, 0) == 2
    assert review_rounds(requested, 3) == 3
    assert review_rounds(None, 1) == 1
    assert review_rounds('{"1": ["alice", "DISMISSED"]}', 0) == 0
    assert review_rounds("not json", 0) == 0
    assert review_rounds('["CHANGES_REQUESTED"]', 0) == 0
