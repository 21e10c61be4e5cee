"""Storage: what the dashboard page and a `/metrics` scrape cost with a year of history, next to an empty database
and a day's.

Three databases, bulk-inserted (Core `INSERT`s in batches, no handlers run): empty; a day (274 deliveries, 27 runs:
a year's average); a year (100,000 deliveries and 10,000 runs over 365 days, the last day as busy as the day's),
with realistic sizes: an 8 KB payload per delivery, a 3 KB result per run, 4 transitions per run, a trigger per 3
runs, a pull request per succeeded run (those of the last day open, on a review queue), 5 repositories. Nothing is
pruned: this measures the queries, with the history retention would otherwise delete.

Then, interleaved in one run (empty, day, year, empty, ...), `GET /` (the dashboard page) and `GET /metrics`, each
through the real app (its lifespan, without the worker) over httpx's in-process ASGI transport, timed in CPU ms of
this process (`time.process_time`: SQLite works in this process; PostgreSQL's own CPU is not counted). Prints the
median of each, and the ratio of the year's to the day's.

Usage: `.venv/bin/python bench/storage.py [--rounds 30] [--postgres postgresql://127.0.0.1:5432/NAME]`
(the PostgreSQL database is created per history, then dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.settings import Settings  # noqa: E402
from bot.store.db import Store  # noqa: E402
from bot.store.models import (  # noqa: E402
    Delivery,
    DeliveryPayload,
    Installation,
    PullRequest,
    Repository,
    Run,
    RunTransition,
    Trigger,
    utcnow,
)
from bot.web import create_app  # noqa: E402

REPOS = [f"octo/repo-{i}" for i in range(5)]
AGENTS = ("claude", "codex", "aider")
EVENTS = (("issues", "labeled"), ("issue_comment", "created"), ("pull_request", "synchronize"),
          ("check_suite", "completed"), ("pull_request_review", "submitted"), ("push", None))
BATCH = 2000


async def write(store: Store, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        await store.write(lambda conn, chunk=chunk: conn.execute(insert(table), chunk))


async def fill(store: Store, now: datetime, *, days: float, deliveries: int, runs: int, payload_bytes: int) -> None:
    """`deliveries` and `runs` spread evenly over the last `days`, oldest first."""
    span = timedelta(days=days)
    await write(store, Installation, [{"id": 1, "account_login": "octo", "account_type": "Organization",
                                       "suspended": False, "created_at": now - span, "updated_at": now - span}])
    await write(store, Repository, [{"id": i + 1, "installation_id": 1, "full_name": name, "private": False}
                                    for i, name in enumerate(REPOS)])
    filler = os.urandom(payload_bytes // 2).hex()
    for start in range(0, deliveries, BATCH):
        rows, bodies = [], []
        for n in range(start, min(deliveries, start + BATCH)):
            at = now - span + span * (n + 1) / (deliveries + 1)
            event, action = EVENTS[n % len(EVENTS)]
            status = "dead" if n % 2000 == 7 else "done"
            rows.append({"id": f"d-{n:08d}", "event": event, "action": action, "installation_id": 1,
                         "repository": REPOS[n % len(REPOS)], "received_at": at, "status": status, "attempts": 1,
                         "next_attempt_at": at, "due_at": None, "finished_at": at + timedelta(seconds=1),
                         "last_error": "boom" if status == "dead" else None})
            bodies.append({"delivery_id": f"d-{n:08d}", "payload": json.dumps({"action": action, "x": filler})})
        await write(store, Delivery, rows)
        await write(store, DeliveryPayload, bodies)
    triggers, run_rows, transitions, pulls = [], [], [], []
    result = json.dumps({"outcome": "succeeded", "summary": "s" * 400, "transcript_tail": "t" * 2400})
    for n in range(runs):
        at = now - span + span * (n + 1) / (runs + 1)
        repo, trigger_id = REPOS[(n // 3) % len(REPOS)], n // 3 + 1
        if n % 3 == 0:
            triggers.append({"id": trigger_id, "delivery_id": f"t-{trigger_id}", "seq": 0, "installation_id": 1,
                             "repository": repo, "issue_number": trigger_id, "is_pull_request": False,
                             "source": "label", "task": "fix", "sender": "octocat", "instructions": "",
                             "created_at": at})
        recent = n >= runs - 3
        state = "running" if recent else ("succeeded", "succeeded", "no_changes", "failed")[n % 4]
        finished = None if recent else at + timedelta(minutes=8)
        run_rows.append({"id": n + 1, "trigger_id": trigger_id, "installation_id": 1, "repository": repo,
                         "issue_number": trigger_id, "task": "fix", "agent": AGENTS[n % 3], "attempt": 1,
                         "kind": "new", "state": state, "branch": f"kickoff/{trigger_id}-{AGENTS[n % 3]}",
                         "base_branch": "main", "runner": "local", "progress": "finished",
                         "result": None if recent else result, "cost_usd": 0.3, "created_at": at, "updated_at": at,
                         "started_at": at + timedelta(seconds=5), "finished_at": finished})
        for step, (src, dst) in enumerate([(None, "queued"), ("queued", "starting"), ("starting", "running"),
                                           ("running", state)][: 3 if recent else 4]):
            transitions.append({"run_id": n + 1, "from_state": src, "to_state": dst, "reason": None,
                                "at": at + timedelta(seconds=step)})
        if state == "succeeded":
            open_ = at >= now - timedelta(days=1)  # the queue is as long with a year behind it as with a day
            pulls.append({"installation_id": 1, "repository": repo, "number": n + 1, "run_id": n + 1,
                          "trigger_id": trigger_id, "issue_number": trigger_id, "agent": AGENTS[n % 3],
                          "title": f"fix #{trigger_id}", "head_ref": f"kickoff/{trigger_id}-{AGENTS[n % 3]}",
                          "base_ref": "main", "state": "open" if open_ else "merged", "eligible_since": at,
                          "created_at": at, "updated_at": at, "merged_at": None if open_ else at})
    await write(store, Trigger, triggers)
    await write(store, Run, run_rows)
    await write(store, RunTransition, transitions)
    await write(store, PullRequest, pulls)


@asynccontextmanager
async def served(url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, DATABASE_URL=url, WEBHOOK_SECRET="bench-secret")  # type: ignore[call-arg]
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def cpu_ms(client: httpx.AsyncClient, path: str) -> float:
    start = time.process_time()
    response = await client.get(path)
    spent = (time.process_time() - start) * 1000
    assert response.status_code == 200, (path, response.status_code, response.text[:200])
    return spent


def file_mb(directory: Path, name: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(f"{name}.db*")) / 1e6


async def postgres_database(base: str, name: str) -> str:
    import asyncpg  # the driver Kickoff's PostgreSQL URLs use

    server = base.rsplit("/", 1)[0]
    conn = await asyncpg.connect(server.replace("postgresql://", "postgres://") + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server}/{name}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--payload-bytes", type=int, default=8000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL; databases bench_storage_* are made on it")
    args = parser.parse_args()
    now = utcnow()
    histories = {"empty": (1.0, 0, 0), "day": (1.0, 274, 27), "year": (365.0, 100_000, 10_000)}
    with tempfile.TemporaryDirectory(prefix="kickoff-storage-") as tmp:
        urls: dict[str, str] = {}
        for name, (days, deliveries, runs) in histories.items():
            if args.postgres:
                urls[name] = await postgres_database(args.postgres, f"bench_storage_{name}")
            else:
                urls[name] = f"sqlite:///{tmp}/{name}.db"
            store = Store(urls[name])
            started = time.monotonic()
            await store.migrate()
            await fill(store, now, days=days, deliveries=deliveries, runs=runs, payload_bytes=args.payload_bytes)
            await store.close()
            size = ""
            if not args.postgres:
                size = f", {file_mb(Path(tmp), name):.0f} MB"
            print(f"{name}: {deliveries} deliveries, {runs} runs, filled in {time.monotonic() - started:.0f} s{size}",
                  flush=True)
        figures: dict[tuple[str, str], list[float]] = {}
        async with served(urls["empty"]) as empty, served(urls["day"]) as day, served(urls["year"]) as year:
            clients = {"empty": empty, "day": day, "year": year}
            for client in clients.values():  # warm: templates, statement caches, the first connection
                await cpu_ms(client, "/")
                await cpu_ms(client, "/metrics")
            for _ in range(args.rounds):
                for name, client in clients.items():
                    for path in ("/", "/metrics"):
                        figures.setdefault((name, path), []).append(await cpu_ms(client, path))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}, {args.rounds} rounds, median CPU ms of this process")
    print(f"{'':10}{'empty':>10}{'day':>10}{'year':>10}{'year/day':>10}")
    for path, label in (("/", "page"), ("/metrics", "scrape")):
        med = {name: statistics.median(figures[(name, path)]) for name in histories}
        print(f"{label:10}{med['empty']:>10.1f}{med['day']:>10.1f}{med['year']:>10.1f}"
              f"{med['year'] / med['day']:>9.2f}x")
    if args.postgres:
        for name in histories:
            await postgres_database(args.postgres, f"bench_storage_{name}")  # emptied again


if __name__ == "__main__":
    asyncio.run(main())
