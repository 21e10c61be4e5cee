"""Every query of the dashboard's page and of a `/metrics` scrape reads ranges of indexes, never a whole table of
history: EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL (sequential scans priced out, so one shows only where no
index can serve), for each statement the two actually run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.dashboard.outcomes import outcomes
from bot.dashboard.queries import overview
from bot.dashboard.scrape import read_database
from bot.store.db import Store
from bot.store.models import utcnow
from tests.dashboard.outcome_history import LAB, seed_outcomes
from tests.dashboard.scenario import seed

HISTORY = (
    "deliveries", "delivery_payloads", "runs", "run_transitions", "pull_requests", "triggers", "pull_facts",
)
"""The tables that grow with use; installations and repositories are as long as the App's installations."""
_SQLITE_SCAN = re.compile(r"^SCAN (\w+)")


@contextmanager
def explained(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """Each SELECT the store runs, with its plan, explained just before it runs on the same connection."""
    plans: list[tuple[str, Any]] = []
    postgres = store.dialect == "postgresql"

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            return
        if postgres:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            raw = cursor.fetchall()[0][0]
            plans.append((statement, json.loads(raw) if isinstance(raw, str) else raw))
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append((statement, [row[3] for row in cursor.fetchall()]))

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield plans
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", before)


def full_scans(plan: Any, postgres: bool) -> list[str]:
    """The whole-table reads of history in one plan: `SCAN t` on SQLite (with or without an index), a `Seq Scan`
    or an index scan without an index condition on PostgreSQL."""
    if not postgres:
        return [line for line in plan if (m := _SQLITE_SCAN.match(line)) and m.group(1) in HISTORY]
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") in HISTORY:
            kind = node["Node Type"]
            if kind == "Seq Scan" or (kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node):
                found.append(f"{kind} on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    for entry in plan:
        walk(entry["Plan"])
    return found


async def test_the_page_and_the_scrape_read_only_index_ranges(database_url: str) -> None:
    store = Store(database_url)
    await store.migrate()
    now = utcnow()
    try:
        await seed(store, now)
        await seed_outcomes(store, now)
        with explained(store) as plans:
            await overview(store, now)
            await overview(store, now, repo="octo/demo")
            await outcomes(store, now)
            await outcomes(store, now, repo=LAB)
            await read_database(store, now)
        postgres = store.dialect == "postgresql"
        tables = " ".join(statement for statement, _ in plans)
        for table in ("deliveries", "runs", "pull_requests", "pull_facts", "triggers"):
            assert f"FROM {table}" in tables  # the queries were seen, and explained
        scans = {statement: found for statement, plan in plans if (found := full_scans(plan, postgres))}
        assert not scans, "\n".join(f"{' '.join(sql.split())}\n  -> {found}" for sql, found in scans.items())
    finally:
        await store.close()


def test_a_full_scan_is_recognised() -> None:
    """The checker itself: what a count over all time looked like before (SQLite and PostgreSQL plans)."""
    assert full_scans(["SCAN deliveries USING COVERING INDEX ix_deliveries_status_received"], False)
    assert full_scans(["SCAN runs"], False)
    assert not full_scans(["SEARCH runs USING INDEX ix_runs_finished (finished_at>?)", "SCAN installations"], False)
    seq = [{"Plan": {"Node Type": "Aggregate", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "runs"}]}}]
    assert full_scans(seq, True) == ["Seq Scan on runs"]
    whole = [{"Plan": {"Node Type": "Index Only Scan", "Relation Name": "deliveries"}}]
    assert full_scans(whole, True) == ["Index Only Scan on deliveries"]
    ranged = [{"Plan": {"Node Type": "Index Scan", "Relation Name": "runs", "Index Cond": "(repository = $1)"}}]
    assert full_scans(ranged, True) == []
