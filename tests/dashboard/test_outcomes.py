"""The outcome metrics, exact on a known history (tests/dashboard/outcome_history.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx

from bot.dashboard.outcomes import Outcome, outcomes, review_rounds
from bot.store.db import Store
from tests.dashboard.conftest import TOKEN, kickoff
from tests.dashboard.outcome_history import EXPECTED, LAB, SHOP, seed_outcomes
from tests.support import ServerThread, make_settings

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


class _Rows(HTMLParser):
    """The cells of each `<tr data-agent>` of each `table.outcomes`, by repository."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._repo: str | None = None
        self._cells: list[str] | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("class") == "outcomes":
            self._repo = found["data-repo"]
            self.tables[self._repo or ""] = []
        elif tag == "tr" and self._repo is not None and "data-agent" in found:
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cells is not None and self._text is not None:
            self._cells.append("".join(self._text).strip())
            self._text = None
        elif tag == "tr" and self._cells is not None and self._repo is not None:
            self.tables[self._repo].append(self._cells)
            self._cells = None
        elif tag == "table":
            self._repo = None


def test_the_dashboard_shows_the_table_and_the_chart(history: str, serve: Callable[..., ServerThread]) -> None:
    server = serve(make_settings(history))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        page = client.get("/")
        live = client.get("/dashboard/live")
    assert page.status_code == 200
    parser = _Rows()
    parser.feed(page.text)
    assert parser.tables == {
        LAB: [["claude", "1", "1", "0", "1", "0", "0%", "—", "$2.00", "—", "0"]],
        SHOP: [
            ["aider", "1", "0", "0", "0", "0", "—", "—", "—", "—", "0"],
            ["claude", "6", "4", "3", "0", "1", "100%", "5h 00m", "$3.00", "$1.00", "3 (0.8 per PR)"],
            ["codex", "4", "2", "1", "1", "0", "50%", "30m 00s", "$1.10", "$1.10", "3 (1.5 per PR)"],
        ],
    }
    assert "Outcomes over the last 30 days" in page.text
    assert "Outcomes in octo/shop, last 30 days" in page.text
    # The chart: per agent, its pull requests split by outcome (widths out of 300), and the cost per merged PR
    # against the dearest (codex's $1.10 is the full 120).
    chart = page.text[page.text.index('<figure class="outcome-figure" data-repo="octo/shop">'):]
    chart = chart[:chart.index("</figure>")]
    assert chart.count("<svg") == 1
    codex = chart[chart.index('data-agent="codex"'):]
    assert '<rect class="seg seg-merged" data-kind="merged" x="130.0" y="80" width="150.0" height="18">' in codex
    assert '<rect class="seg seg-closed" data-kind="closed" x="280.0" y="80" width="150.0" height="18">' in codex
    assert "<title>codex: 1 closed unmerged</title>" in codex
    assert ">50% accepted<" in codex
    assert '<rect class="cost-bar" x="560" y="80" width="120.0" height="18">' in codex
    claude = chart[chart.index('data-agent="claude"'):chart.index('data-agent="codex"')]
    assert 'data-kind="merged" x="130.0" y="52" width="225.0"' in claude
    assert 'data-kind="open" x="355.0" y="52" width="75.0"' in claude
    assert '<rect class="cost-bar" x="560" y="52" width="109.1" height="18">' in claude
    aider = chart[chart.index('data-agent="aider"'):chart.index('data-agent="claude"')]
    assert ">no pull request<" in aider
    assert ">nothing merged<" in aider
    assert "seg-" not in aider
    # The 2-second poll does not recompute 30 days of figures.
    assert live.status_code == 200
    assert "outcome" not in live.text


def test_the_json_api_returns_the_same_figures(history: str, serve: Callable[..., ServerThread]) -> None:
    server = serve(make_settings(history))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        answer = client.get("/api/outcomes").json()
        shop = client.get("/api/outcomes", params={"repo": SHOP}).json()
        longer = client.get("/api/outcomes", params={"repo": SHOP, "days": 45}).json()
        assert client.get("/api/outcomes", params={"days": 91}).status_code == 422
        assert client.get("/api/outcomes", params={"repo": "nope"}).status_code == 400
    assert answer["window_days"] == 30
    assert [(row["repository"], row["agent"]) for row in answer["outcomes"]] == list(EXPECTED)
    for row in answer["outcomes"]:
        values = EXPECTED[(row["repository"], row["agent"])]
        assert (row["runs"], row["cost_usd"], row["prs_opened"], row["prs_merged"], row["prs_closed_unmerged"],
                row["prs_open"], row["review_rounds"], row["merge_seconds_median"]) == (
            values["runs"], values["cost_usd"], values["opened"], values["merged"], values["closed"],
            values["open"], values["review_rounds"], values["merge_seconds_median"])
    claude = next(row for row in shop["outcomes"] if row["agent"] == "claude")
    assert (claude["acceptance_rate"], claude["cost_per_merged_usd"], claude["review_rounds_per_pr"]) == (
        1.0, 1.0, 0.75)
    assert {row["repository"] for row in shop["outcomes"]} == {SHOP}
    assert next(row for row in longer["outcomes"] if row["agent"] == "claude")["prs_merged"] == 4


def test_the_json_api_needs_the_dashboard_token(history: str, serve: Callable[..., ServerThread]) -> None:
    server = serve(make_settings(history, DASHBOARD_TOKEN=TOKEN))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/api/outcomes").status_code == 401
        assert client.get("/api/outcomes", headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = client.get("/api/outcomes", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert len(answer.json()["outcomes"]) == 4


def test_metrics_carry_the_outcome_gauges(history: str, serve: Callable[..., ServerThread]) -> None:
    server = serve(make_settings(history))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        text = client.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("kickoff_outcome_")]
    assert lines == [
        'kickoff_outcome_runs{agent="claude",repository="octo/lab"} 1.0',
        'kickoff_outcome_runs{agent="aider",repository="octo/shop"} 1.0',
        'kickoff_outcome_runs{agent="claude",repository="octo/shop"} 6.0',
        'kickoff_outcome_runs{agent="codex",repository="octo/shop"} 4.0',
        'kickoff_outcome_prs{agent="claude",outcome="merged",repository="octo/lab"} 0.0',
        'kickoff_outcome_prs{agent="claude",outcome="closed",repository="octo/lab"} 1.0',
        'kickoff_outcome_prs{agent="claude",outcome="open",repository="octo/lab"} 0.0',
        'kickoff_outcome_prs{agent="aider",outcome="merged",repository="octo/shop"} 0.0',
        'kickoff_outcome_prs{agent="aider",outcome="closed",repository="octo/shop"} 0.0',
        'kickoff_outcome_prs{agent="aider",outcome="open",repository="octo/shop"} 0.0',
        'kickoff_outcome_prs{agent="claude",outcome="merged",repository="octo/shop"} 3.0',
        'kickoff_outcome_prs{agent="claude",outcome="closed",repository="octo/shop"} 0.0',
        'kickoff_outcome_prs{agent="claude",outcome="open",repository="octo/shop"} 1.0',
        'kickoff_outcome_prs{agent="codex",outcome="merged",repository="octo/shop"} 1.0',
        'kickoff_outcome_prs{agent="codex",outcome="closed",repository="octo/shop"} 1.0',
        'kickoff_outcome_prs{agent="codex",outcome="open",repository="octo/shop"} 0.0',
        'kickoff_outcome_acceptance_ratio{agent="claude",repository="octo/lab"} 0.0',
        'kickoff_outcome_acceptance_ratio{agent="claude",repository="octo/shop"} 1.0',
        'kickoff_outcome_acceptance_ratio{agent="codex",repository="octo/shop"} 0.5',
        'kickoff_outcome_cost_usd{agent="claude",repository="octo/lab"} 2.0',
        'kickoff_outcome_cost_usd{agent="claude",repository="octo/shop"} 3.0',
        'kickoff_outcome_cost_usd{agent="codex",repository="octo/shop"} 1.1',
        'kickoff_outcome_cost_per_merged_usd{agent="claude",repository="octo/shop"} 1.0',
        'kickoff_outcome_cost_per_merged_usd{agent="codex",repository="octo/shop"} 1.1',
        'kickoff_outcome_merge_seconds_median{agent="claude",repository="octo/shop"} 18000.0',
        'kickoff_outcome_merge_seconds_median{agent="codex",repository="octo/shop"} 1800.0',
        'kickoff_outcome_review_rounds{agent="claude",repository="octo/lab"} 0.0',
        'kickoff_outcome_review_rounds{agent="aider",repository="octo/shop"} 0.0',
        'kickoff_outcome_review_rounds{agent="claude",repository="octo/shop"} 3.0',
        'kickoff_outcome_review_rounds{agent="codex",repository="octo/shop"} 3.0',
    ]
    assert "# HELP kickoff_outcome_acceptance_ratio Merged over decided (merged or closed unmerged) pull requests of " \
           "the last 30 days." in text


def test_kickoff_status_prints_the_outcome_table(history: str, tmp_path: Path) -> None:
    result = kickoff(["status"], tmp_path, DATABASE_URL=history)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    table = out[out.index("Outcomes over the last 30 days"):out.index("Failed and dead deliveries")]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if "│ octo/" in line]
    assert rows == [
        ["octo/lab", "claude", "1", "1", "0", "1", "0", "0%", "—", "$2.00", "—", "0"],
        ["octo/shop", "aider", "1", "0", "0", "0", "0", "—", "—", "—", "—", "0"],
        ["octo/shop", "claude", "6", "4", "3", "0", "1", "100%", "5h 00m", "$3.00", "$1.00", "3"],
        ["octo/shop", "codex", "4", "2", "1", "1", "0", "50%", "30m 00s", "$1.10", "$1.10", "3"],
    ]
    only = kickoff(["status", "--repo", LAB], tmp_path, DATABASE_URL=history)
    assert only.returncode == 0, only.stderr
    assert "│ octo/lab " in only.stdout
    assert "│ octo/shop " not in only.stdout
