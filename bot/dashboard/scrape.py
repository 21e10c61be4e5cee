"""`GET /metrics`: the database's figures read at scrape time, then the counters of `bot.metrics` rendered.

Behind METRICS_TOKEN (a bearer token) when it is set; without it only a local request (a loopback bind, a
loopback peer, no proxy header: `bot.dashboard.auth.local_request`) is answered, since the figures name
repositories and show the service's load to whoever can reach the port.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import ColumnElement, case, extract, func, select

from bot.dashboard.auth import require_scraper
from bot.dashboard.outcomes import outcomes
from bot.dashboard.queries import WINDOW, delivery_counts, queue_rows, run_counts
from bot.metrics import RUN_BUCKETS, DatabaseFigures, Metrics
from bot.store.db import Store
from bot.store.models import Run

router = APIRouter()


async def read_database(store: Store, now: datetime) -> DatabaseFigures:
    """Active runs and deliveries still owed, whole; finished runs and handled deliveries of the last 24 hours
    (`bot.dashboard.queries.WINDOW`); outcomes of the last 30 days (`bot.dashboard.outcomes.WINDOW`): each figure
    reads an index range, however long the history."""
    figures = DatabaseFigures()
    seconds = _run_seconds(store.dialect)
    # `finished_at` is set only when a run becomes final: one range of `ix_runs_finished`.
    finished = (Run.finished_at >= now - WINDOW) & Run.started_at.is_not(None)
    async with store.sessions() as session:
        figures.runs_by_state = await run_counts(session, now)
        figures.inbox = await delivery_counts(session, now)
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in RUN_BUCKETS]
        totals = (await session.execute(select(func.count(), func.sum(seconds), *columns).where(finished))).one()
    count = int(totals[0] or 0)
    figures.run_seconds_sum = float(totals[1] or 0.0)
    figures.run_buckets = [
        (_le(bound), float(n or 0)) for bound, n in zip(RUN_BUCKETS, totals[2:], strict=True)
    ]
    figures.run_buckets.append(("+Inf", float(count)))
    for row in await queue_rows(store, now):
        figures.queue_length.setdefault(row.repository, 0)
        if row.position is not None:
            figures.queue_length[row.repository] += 1
    found = await outcomes(store, now)
    figures.outcomes, figures.outcome_days = found.rows, found.days
    return figures


def _run_seconds(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return extract("epoch", Run.finished_at - Run.started_at)
    return (func.julianday(Run.finished_at) - func.julianday(Run.started_at)) * 86400.0


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes one (`10.0`)."""
    return repr(float(bound))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services = request.app.state.services
    require_scraper(request, services.settings)
    collected: Metrics = request.app.state.metrics
    collected.update(await read_database(services.store, services.clock()), services.github)
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
