"""Kickoff's Prometheus figures, from one `CollectorRegistry` per app (tests never share state). `GET /metrics`,
which reads the database and serves them, is `bot.dashboard.scrape`: this module is the counters alone, so the
ingress and the dispatcher that count can sit below every feature.

Counted where it happens, with one explicit call each: the ingress (deliveries received, ack latency), the
dispatcher (processed, failed, dead, lag). Read at scrape time: runs by state, run durations and queue lengths from
the database (finished runs and handled deliveries over the last 24 hours, so a scrape costs the same with a year of
history) (database-wide, so with several replicas take `max`, not `sum`), and GitHub requests and the remaining
rate limit per installation from the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.store.models import DeliveryStatus, RunState

ACK_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
RUN_BUCKETS: Final = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
RUN_STATES: Final = (*RunState.ACTIVE, *RunState.FINAL)
OUTCOMES: Final = ("merged", "closed", "open")


class OutcomeFigures(Protocol):
    """One repository × agent's outcomes over the window (`bot.dashboard.outcomes.Outcome`)."""

    @property
    def repository(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def merged(self) -> int: ...
    @property
    def closed(self) -> int: ...
    @property
    def open(self) -> int: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def review_rounds(self) -> int: ...
    @property
    def merge_seconds_median(self) -> float | None: ...
    @property
    def acceptance(self) -> float | None: ...
    @property
    def cost_per_merged(self) -> float | None: ...


@dataclass
class DatabaseFigures:
    """What one scrape read from the database."""

    runs_by_state: dict[str, int] = field(default_factory=dict)
    run_buckets: list[tuple[str, float]] = field(default_factory=list)  # cumulative, Prometheus style
    run_seconds_sum: float = 0.0
    queue_length: dict[str, int] = field(default_factory=dict)
    inbox: dict[str, int] = field(default_factory=dict)
    outcomes: Sequence[OutcomeFigures] = ()
    outcome_days: int = 30


class _DatabaseCollector(Collector):
    def __init__(self) -> None:
        self.latest = DatabaseFigures()

    def collect(self) -> Iterable[Metric]:
        figures = self.latest
        runs = GaugeMetricFamily(
            "kickoff_runs", "Runs by state: every active run; finished ones, those finished in the last 24 hours.",
            labels=["state"],
        )
        for state in RUN_STATES:
            runs.add_metric([state], figures.runs_by_state.get(state, 0))
        yield runs
        if figures.run_buckets:
            yield HistogramMetricFamily(
                "kickoff_run_duration_seconds",
                "From start to end of the runs finished in the last 24 hours.",
                buckets=figures.run_buckets,
                sum_value=figures.run_seconds_sum,
            )
        queue = GaugeMetricFamily(
            "kickoff_queue_length", "Pull requests in review order, per repository.", labels=["repository"]
        )
        for repository, length in sorted(figures.queue_length.items()):
            queue.add_metric([repository], length)
        yield queue
        inbox = GaugeMetricFamily(
            "kickoff_inbox_deliveries", "Deliveries in the inbox by status; done: those received in the last 24 hours.",
            labels=["status"],
        )
        for status in DeliveryStatus.ALL:
            inbox.add_metric([status], figures.inbox.get(status, 0))
        yield inbox
        yield from _outcome_families(figures)


def _outcome_families(figures: DatabaseFigures) -> Iterable[Metric]:
    """The `kickoff_outcome_*` gauges: one series per repository × agent with a run finished in the window (a
    ratio, a median or a cost per merged PR only where it is defined: none merged, none decided, no cost reported
    leave it out rather than write NaN)."""
    window = f"the last {figures.outcome_days} days"
    labels = ["repository", "agent"]
    runs = GaugeMetricFamily("kickoff_outcome_runs", f"Agent runs finished in {window}.", labels=labels)
    prs = GaugeMetricFamily(
        "kickoff_outcome_prs",
        f"Pull requests opened by the runs finished in {window}, by what became of them: merged, closed (unmerged, "
        "superseded included), open (still undecided).",
        labels=[*labels, "outcome"],
    )
    ratio = GaugeMetricFamily(
        "kickoff_outcome_acceptance_ratio",
        f"Merged over decided (merged or closed unmerged) pull requests of {window}.", labels=labels,
    )
    cost = GaugeMetricFamily(
        "kickoff_outcome_cost_usd", f"The reported cost of the runs finished in {window}, in US dollars.", labels=labels
    )
    per_merged = GaugeMetricFamily(
        "kickoff_outcome_cost_per_merged_usd",
        f"The cost of every run finished in {window} (failed ones too) over the pull requests merged.", labels=labels,
    )
    median = GaugeMetricFamily(
        "kickoff_outcome_merge_seconds_median",
        f"The median time from opened to merged of the pull requests of {window} that merged.", labels=labels,
    )
    rounds = GaugeMetricFamily(
        "kickoff_outcome_review_rounds",
        f"Review rounds on the pull requests of {window}: per pull request, its reviews that requested changes or "
        "the follow-ups people asked for on it, whichever are more.",
        labels=labels,
    )
    for row in figures.outcomes:
        key = [row.repository, row.agent]
        runs.add_metric(key, row.runs)
        for outcome, count in zip(OUTCOMES, (row.merged, row.closed, row.open), strict=True):
            prs.add_metric([*key, outcome], count)
        rounds.add_metric(key, row.review_rounds)
        if row.acceptance is not None:
            ratio.add_metric(key, row.acceptance)
        if row.cost_usd is not None:
            cost.add_metric(key, row.cost_usd)
        if row.cost_per_merged is not None:
            per_merged.add_metric(key, row.cost_per_merged)
        if row.merge_seconds_median is not None:
            median.add_metric(key, row.merge_seconds_median)
    yield from (runs, prs, ratio, cost, per_merged, median, rounds)


class _GitHubCollector(Collector):
    """Reads the gateway's own counters; a fake gateway without them shows nothing."""

    def __init__(self) -> None:
        self.gateway: Any = None

    def collect(self) -> Iterable[Metric]:
        counts: Mapping[tuple[str, int], int] = getattr(self.gateway, "request_counts", None) or {}
        remaining: Mapping[int, int] = getattr(self.gateway, "rate_limit_remaining", None) or {}
        requests = CounterMetricFamily(
            "kickoff_github_requests", "HTTP requests to GitHub's REST API (each retry counts).",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(dict(counts).items()):
            requests.add_metric([method, str(status)], count)
        yield requests
        endpoints: Mapping[tuple[str, str, int], int] = getattr(self.gateway, "endpoint_counts", None) or {}
        by_endpoint = CounterMetricFamily(
            "kickoff_github_endpoint_requests",
            "HTTP requests to GitHub's REST API by endpoint (method and route template) and status; a 304 (an ETag "
            "matched) does not count against the rate limit.",
            labels=["method", "endpoint", "status"],
        )
        for (method, endpoint, status), count in sorted(dict(endpoints).items()):
            by_endpoint.add_metric([method, endpoint, str(status)], count)
        yield by_endpoint
        limit = GaugeMetricFamily(
            "kickoff_github_rate_limit_remaining", "The last x-ratelimit-remaining GitHub sent, per installation.",
            labels=["installation"],
        )
        for installation, value in sorted(dict(remaining).items()):
            limit.add_metric([str(installation)], value)
        yield limit
        limits: Mapping[int, int] = getattr(self.gateway, "rate_limit_limit", None) or {}
        hourly = GaugeMetricFamily(
            "kickoff_github_rate_limit", "The last x-ratelimit-limit GitHub sent (requests an hour), per installation.",
            labels=["installation"],
        )
        for installation, value in sorted(dict(limits).items()):
            hourly.add_metric([str(installation)], value)
        yield hourly


class _QueueCollector(Collector):
    """Reads the drift the queue's sweeps found between its webhook-fed facts and GitHub (`bot.queue.facts.Drift`),
    in this process."""

    KINDS = ("pulls", "labels", "reviews", "checks")

    def __init__(self) -> None:
        self.drift: Any = None

    def collect(self) -> Iterable[Metric]:
        drift = self.drift
        if drift is None:
            return
        found = CounterMetricFamily(
            "kickoff_queue_drift",
            "Facts the queue's sweep found different on GitHub from what the webhooks had told (each repaired), by "
            "kind, since this process started: missed or late webhooks.",
            labels=["kind"],
        )
        for kind in self.KINDS:
            found.add_metric([kind], int(getattr(drift, kind, 0)))
        yield found


class _IngressCollector(Collector):
    """Reads the webhook ingress's body guard (its budget of unauthenticated bytes and its read deadlines)."""

    def __init__(self) -> None:
        self.guard: Any = None

    def collect(self) -> Iterable[Metric]:
        guard = self.guard
        if guard is None:
            return
        held = GaugeMetricFamily("kickoff_webhook_body_bytes", "Unauthenticated webhook body bytes held now.")
        held.add_metric([], guard.in_flight)
        yield held
        peak = GaugeMetricFamily("kickoff_webhook_body_bytes_peak", "The most such bytes held at once so far.")
        peak.add_metric([], guard.peak)
        yield peak
        budget = GaugeMetricFamily("kickoff_webhook_body_budget_bytes", "KICKOFF_WEBHOOK_BODY_BUDGET.")
        budget.add_metric([], guard.budget)
        yield budget
        refused = CounterMetricFamily(
            "kickoff_webhook_bodies_refused", "Webhook bodies refused before their signature was checked.",
            labels=["reason"],
        )
        refused.add_metric(["budget"], guard.refused)
        refused.add_metric(["deadline"], guard.cut_off)
        yield refused


class Metrics:
    """One app's metrics. Call sites: `delivery_received` (ingress), `delivery_claimed`/`_handled`/`_failed`
    (dispatcher); the scrape (`bot.dashboard.scrape`) reads the database and calls `update` first."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "kickoff_deliveries_received", "Webhook deliveries stored by the ingress.", ["event"], registry=r
        )
        self.processed = Counter(
            "kickoff_deliveries_processed", "Deliveries whose handlers all succeeded.", ["event"], registry=r
        )
        self.failed = Counter(
            "kickoff_deliveries_failed", "Failed handling attempts (retried or parked as dead).", ["event"], registry=r
        )
        self.dead = Counter(
            "kickoff_deliveries_dead", "Deliveries parked as dead after their last attempt.", ["event"], registry=r
        )
        self.ack_seconds = Histogram(
            "kickoff_webhook_ack_seconds", "From the start of a webhook request to the ingress's answer.",
            buckets=ACK_BUCKETS, registry=r,
        )
        self.dispatch_lag = Histogram(
            "kickoff_dispatch_lag_seconds", "From receipt to a delivery's first claim by a dispatcher.",
            buckets=LAG_BUCKETS, registry=r,
        )
        self._database = _DatabaseCollector()
        self._github = _GitHubCollector()
        self._ingress = _IngressCollector()
        self._queue = _QueueCollector()
        r.register(self._database)
        r.register(self._github)
        r.register(self._ingress)
        r.register(self._queue)

    def watch_queue(self, drift: object) -> None:
        """Report the queue's drift counts (`bot.queue.facts.Drift`, kept by this process's sweeps) at each scrape."""
        self._queue.drift = drift

    def watch_ingress(self, guard: object) -> None:
        """Report the ingress's body guard (`bot.ingress.BodyGuard`) at each scrape."""
        self._ingress.guard = guard

    def delivery_received(self, event: str, ack_seconds: float) -> None:
        self.received.labels(event).inc()
        self.ack_seconds.observe(ack_seconds)

    def delivery_claimed(self, attempt: int, received_at: datetime, now: datetime) -> None:
        if attempt == 1:
            self.dispatch_lag.observe(max(0.0, (now - received_at).total_seconds()))

    def delivery_handled(self, event: str) -> None:
        self.processed.labels(event).inc()

    def delivery_failed(self, event: str, *, dead: bool) -> None:
        self.failed.labels(event).inc()
        if dead:
            self.dead.labels(event).inc()

    def update(self, figures: DatabaseFigures, gateway: object) -> None:
        """What the next render shows of the database and the gateway (the scrape reads them first)."""
        self._database.latest = figures
        self._github.gateway = gateway

    def render(self) -> bytes:
        return generate_latest(self.registry)
